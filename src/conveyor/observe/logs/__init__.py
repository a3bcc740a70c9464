"""The EFK role: every replica's output collected from the Docker Engine, stored and searched
embedded, shipped to Elasticsearch/OpenSearch or Loki."""
