"""Pure selection: expressions, rules and only/except, variables, matrix, the schedule and the
policies that decide a job's outcome. No I/O: git and file facts are passed in."""
