for name in ("alpha", "beta"):
    print(f"test-{name}:\n  script: echo {name}\n")
