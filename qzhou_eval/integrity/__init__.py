"""Integrity by construction, one owner per rule.

``content`` (identity of a file by its bytes, memoised under a stamp no edit can keep), ``outputs`` (an
output is never an input; existing outputs need the overwrite flag; state paths can hold files), ``numbers``
(every numeric value is finite and in range), ``files`` (UTF-8 text, strict YAML), ``exhaustion`` (a full
disk is not damage).
"""
