"""Search indexing: CDC change events of products and reviews into Elasticsearch."""
