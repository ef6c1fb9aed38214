"""Recipient uploads: CSV or NDJSON streamed in, checked row by row, valid rows out for COPY.

Memory stays bounded by one chunk plus one record (at most MAX_RECORD_BYTES), whatever the
upload's size: nothing is kept per row but the first MAX_ERRORS error reports. Every value,
in every column, is limited to MAX_VALUE_CHARS characters.

``upload`` reads one upload (and names the formats), ``framing`` cuts bytes into lines,
``csv`` and ``ndjson`` read records, ``rows`` checks one record's values.
"""
