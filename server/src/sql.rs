//! The few SQL calls the server's storage code makes, over either database.
//!
//! Credentials, audit rows, documents and limits are written with the same
//! statements on SQLite and PostgreSQL: the logic around them (who may
//! enroll, when an invite has expired, which heads a write may replace)
//! exists once. Statements are written with SQLite's numbered parameters
//! (`?1`, `?2`…), which the PostgreSQL side turns into `$1`, `$2`…; the
//! schemas keep to types both engines share (text, 64-bit integers, blobs),
//! so a value reads back the same from either.
//!
//! The rare statement that differs between the two asks [`Sql::dialect`].

use crate::error::{Error, Result};

/// Which database a statement runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// The embedded SQLite database.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A statement parameter. Nulls carry their type, as PostgreSQL checks a
/// parameter's type even when it is null.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    /// A 64-bit integer, or a null one.
    Int(Option<i64>),
    /// Text, or null text.
    Text(Option<&'a str>),
    /// Bytes, or null bytes.
    Blob(Option<&'a [u8]>),
}

impl From<i64> for Param<'_> {
    fn from(value: i64) -> Self {
        Param::Int(Some(value))
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(value: Option<i64>) -> Self {
        Param::Int(value)
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(value: &'a str) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(value: &'a String) -> Self {
        Param::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Param::Text(value)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Param::Text(value.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(value: &'a [u8]) -> Self {
        Param::Blob(Some(value))
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(value: &'a Vec<u8>) -> Self {
        Param::Blob(Some(value))
    }
}

impl<'a> From<Option<&'a [u8]>> for Param<'a> {
    fn from(value: Option<&'a [u8]>) -> Self {
        Param::Blob(value)
    }
}

/// Parameters for a statement: `params![a, b]` converts each with
/// [`Param::from`].
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        &[$($crate::sql::Param::from($value)),*][..]
    };
}
pub(crate) use params;

/// One value read from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL null.
    Null,
    /// An integer (booleans read as 0 or 1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// One row of a result, its columns in the order the statement named them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    fn at(&self, i: usize) -> Result<&Value> {
        self.0
            .get(i)
            .ok_or_else(|| Error::Database(format!("no column {i} in the row")))
    }

    fn mismatch(&self, i: usize, want: &str) -> Error {
        Error::Database(format!("column {i} is not {want}: {:?}", self.0.get(i)))
    }

    /// Column `i` as an integer.
    pub(crate) fn int(&self, i: usize) -> Result<i64> {
        self.opt_int(i)?
            .ok_or_else(|| self.mismatch(i, "an integer"))
    }

    /// Column `i` as an integer or null.
    pub(crate) fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Int(v) => Ok(Some(*v)),
            _ => Err(self.mismatch(i, "an integer")),
        }
    }

    /// Column `i` as text.
    pub(crate) fn text(&self, i: usize) -> Result<String> {
        self.opt_text(i)?.ok_or_else(|| self.mismatch(i, "text"))
    }

    /// Column `i` as text or null.
    pub(crate) fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Text(v) => Ok(Some(v.clone())),
            _ => Err(self.mismatch(i, "text")),
        }
    }

    /// Column `i` as bytes.
    pub(crate) fn blob(&self, i: usize) -> Result<Vec<u8>> {
        self.opt_blob(i)?.ok_or_else(|| self.mismatch(i, "bytes"))
    }

    /// Column `i` as bytes or null.
    pub(crate) fn opt_blob(&self, i: usize) -> Result<Option<Vec<u8>>> {
        match self.at(i)? {
            Value::Null => Ok(None),
            Value::Blob(v) => Ok(Some(v.clone())),
            _ => Err(self.mismatch(i, "bytes")),
        }
    }

    /// Takes column `i` as bytes without copying them.
    pub(crate) fn take_blob(&mut self, i: usize) -> Result<Vec<u8>> {
        match self.0.get_mut(i) {
            Some(Value::Blob(v)) => Ok(std::mem::take(v)),
            _ => Err(self.mismatch(i, "bytes")),
        }
    }
}

/// A connection (or transaction) statements run on.
pub(crate) trait Sql {
    /// Which database this is.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; returns how many rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64>;

    /// Runs a query; returns every row.
    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>>;

    /// Runs a query expected to return at most one row.
    fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// Runs a query expected to return exactly one row.
    fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        self.query_opt(sql, params)?
            .ok_or_else(|| Error::Database(format!("no row for: {}", first_line(sql))))
    }
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

// --- SQLite ---------------------------------------------------------------------------

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Int(Some(v)) => ValueRef::Integer(v),
            Param::Text(Some(v)) => ValueRef::Text(v.as_bytes()),
            Param::Blob(Some(v)) => ValueRef::Blob(v),
            Param::Int(None) | Param::Text(None) | Param::Blob(None) => ValueRef::Null,
        }))
    }
}

impl Sql for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let changed = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(params))?;
        Ok(changed as u64)
    }

    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                    ValueRef::Real(v) => {
                        return Err(Error::Database(format!(
                            "unexpected real {v} in column {i}"
                        )));
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }
}

/// A savepoint or transaction runs statements as its connection does.
macro_rules! sql_through_deref {
    ($($ty:ty),*) => {$(
        impl Sql for $ty {
            fn dialect(&self) -> Dialect {
                Dialect::Sqlite
            }

            fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
                Sql::execute(&**self, sql, params)
            }

            fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
                Sql::query(&**self, sql, params)
            }
        }
    )*};
}
sql_through_deref!(rusqlite::Savepoint<'_>, rusqlite::Transaction<'_>);

/// SQL with `?N` parameters rewritten as PostgreSQL's `$N`.
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
        }
        if c == '?' && !in_string && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_become_dollars_outside_strings() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
        assert_eq!(to_postgres("SELECT '?' || ?"), "SELECT '?' || ?");
    }

    #[test]
    fn sqlite_values_read_back_by_type() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (i INTEGER, s TEXT, b BLOB)")
            .unwrap();
        let changed = Sql::execute(
            &conn,
            "INSERT INTO t VALUES (?1, ?2, ?3), (?4, ?5, ?6)",
            params![
                7i64,
                "seven",
                b"7".as_slice(),
                None::<i64>,
                None::<&str>,
                None::<&[u8]>
            ],
        )
        .unwrap();
        assert_eq!(changed, 2);
        let rows = Sql::query(&conn, "SELECT i, s, b FROM t ORDER BY i", params![]).unwrap();
        assert_eq!(rows[0].opt_int(0).unwrap(), None);
        assert_eq!(rows[0].opt_text(1).unwrap(), None);
        assert_eq!(rows[1].int(0).unwrap(), 7);
        assert_eq!(rows[1].text(1).unwrap(), "seven");
        assert_eq!(rows[1].blob(2).unwrap(), b"7");
        assert!(rows[1].text(0).is_err(), "an integer is not text");
        assert!(rows[1].int(5).is_err(), "no such column");
    }
}
