project = 'demo'
