"""The first of the SQL checks' three read-only guards: a statement is parsed at config load and
refused unless it is one plain query.

Refused, each with the construct named: DML (INSERT, UPDATE, DELETE, MERGE, REPLACE), DDL, `SELECT …
FOR UPDATE` / `LOCK IN SHARE MODE`, PL/SQL blocks (`BEGIN`/`DECLARE`), several statements, `INTO
OUTFILE`/`INTO DUMPFILE`/`INTO @var`, procedure calls (`CALL`, `EXEC`), session changes (`SET`) and
functions with side effects on the server (file reads, named locks). The parser is sqlglot with the
Oracle or MySQL dialect; the read-only transaction and the account's grants are the other two guards,
for whatever a parser cannot know (a function that writes, a dialect quirk).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

Dialect = Literal["oracle", "mysql"]

_PLSQL_STARTS = {"BEGIN", "DECLARE", "CREATE", "EXEC", "EXECUTE", "CALL"}
_INTO_TARGETS = {"OUTFILE", "DUMPFILE"}
_SIDE_EFFECT_FUNCTIONS = frozenset({
    "LOAD_FILE", "GET_LOCK", "RELEASE_LOCK", "RELEASE_ALL_LOCKS", "IS_FREE_LOCK", "MASTER_POS_WAIT",
    "SYS_EXEC", "SYS_EVAL", "UTL_FILE", "UTL_HTTP", "DBMS_LOCK", "DBMS_PIPE", "UTL_TCP", "UTL_SMTP",
})


def _describe_leading(sql: str, dialect: Dialect) -> str | None:
    """Name what a statement that the parser rejects or cannot place is, from its tokens."""
    from sqlglot import dialects
    from sqlglot.tokens import Tokenizer

    tokenizer: Tokenizer = dialects.Dialect.get_or_raise(dialect).tokenizer()
    try:
        tokens = [t.text.upper() for t in tokenizer.tokenize(sql)]
    except Exception:
        return None
    if not tokens:
        return "an empty statement"
    if tokens[0] in _PLSQL_STARTS:
        return {"BEGIN": "a PL/SQL block", "DECLARE": "a PL/SQL block", "CREATE": "DDL (CREATE)",
                "CALL": "a procedure call", "EXEC": "a procedure call",
                "EXECUTE": "a procedure call"}[tokens[0]]
    for first, second in pairwise(tokens):
        if first == "INTO" and second in _INTO_TARGETS:
            return f"INTO {second}"
    if tokens[0] in {"LOCK", "HANDLER", "DO", "LOAD", "REPLACE", "TRUNCATE", "RENAME", "GRANT",
                     "REVOKE", "UNLOCK", "FLUSH", "KILL", "SHUTDOWN"}:
        return f"a {tokens[0]} statement"
    return None


def refuse_reason(sql: str, dialect: Dialect) -> str | None:
    """None when `sql` is one plain query in `dialect`, else what makes it something else."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    leading = _describe_leading(sql, dialect)
    if leading is not None:
        return leading
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except SqlglotError:
        return f"a statement the {dialect} parser does not read as a query"
    if len(statements) != 1:
        return f"{len(statements)} statements" if statements else "an empty statement"
    (tree,) = statements
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except | exp.Subquery):
        kind = type(tree).__name__.upper()
        writes = (exp.Insert, exp.Update, exp.Delete, exp.Merge)
        if isinstance(tree, writes):
            return f"DML ({kind})"
        if isinstance(tree, exp.Create | exp.Drop | exp.Alter | exp.TruncateTable):
            return f"DDL ({kind})"
        if isinstance(tree, exp.Command):
            return f"a {str(tree.this).upper()} command"
        return f"a {kind} statement"
    for node in tree.walk():
        if isinstance(node, exp.Lock):
            return "a locking read (FOR UPDATE / LOCK IN SHARE MODE)"
        if isinstance(node, exp.Into):
            return "SELECT … INTO"
        if isinstance(node, exp.Insert | exp.Update | exp.Delete | exp.Merge | exp.Create | exp.Drop
                      | exp.Alter | exp.Command):
            return f"a nested {type(node).__name__.upper()}"
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name.split(".")[0] in _SIDE_EFFECT_FUNCTIONS:
                return f"the function {name}, which acts on the server"
        if isinstance(node, exp.Dot | exp.Column):
            head = node.sql(dialect=dialect).split(".")[0].strip('"`').upper()
            if head in _SIDE_EFFECT_FUNCTIONS:
                return f"the package {head}, which acts on the server"
    return None
