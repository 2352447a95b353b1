"""Pipeline declarations (indexes and warehouse mirrors) and the table of column types."""
