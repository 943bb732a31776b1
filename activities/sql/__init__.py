"""Questions over a SQL database (the `query_data` tool): the model writes one query from
the database's described schema, the query is checked (`checker`), run read-only under a
SELECT-only role with a timeout (`runner`), retried with its error up to MAX_SQL_RETRIES,
and its result kept as a CSV and, for a trend or comparison, a chart (`chart`)."""
