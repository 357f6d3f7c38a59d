//! How a job on a SQLite connection fails, and what that means for the caller.
//!
//! Inside a job, `?` takes SQLite's own errors and the store errors a job raises itself (a
//! failed condition, a corrupt record) alike: both are a [`Failure`]. Where a job's outcome
//! leaves this crate it becomes a store [`Error`], and only there is a SQLite error sorted
//! into retriable or fatal ([`classify`]).

use aegis_core::store::Error;

#[derive(Debug)]
pub(crate) enum Failure {
    Sqlite(rusqlite::Error),
    Store(Error),
}

/// The outcome of a job on a connection.
pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sqlite(e)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Store(e)
    }
}

impl From<serde_json::Error> for Failure {
    fn from(e: serde_json::Error) -> Self {
        Failure::Store(Error::from(e))
    }
}

impl From<Failure> for Error {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sqlite(e) => classify(e),
            Failure::Store(e) => e,
        }
    }
}

/// Busy, locked, I/O, full and out-of-memory failures pass; a broken constraint, a corrupt
/// or mistyped record, or a misuse of the API does not. A query that found no row is
/// [`Error::NotFound`].
pub(crate) fn classify(e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::QueryReturnedNoRows => Error::NotFound(e.to_string()),
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            C::DatabaseBusy
            | C::DatabaseLocked
            | C::SystemIoFailure
            | C::DiskFull
            | C::OutOfMemory
            | C::CannotOpen
            | C::FileLockingProtocolFailed
            | C::SchemaChanged
            | C::OperationInterrupted
            | C::OperationAborted => Error::Retriable(e.to_string()),
            _ => Error::Fatal(e.to_string()),
        },
        _ => Error::Fatal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::ffi;

    fn sqlite(code: i32) -> Error {
        classify(rusqlite::Error::SqliteFailure(ffi::Error::new(code), None))
    }

    #[test]
    fn sqlite_failures_that_pass_are_retriable_and_the_rest_fatal() {
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_LOCKED,
            ffi::SQLITE_IOERR,
            ffi::SQLITE_FULL,
        ] {
            assert!(sqlite(code).is_retriable(), "{code}: {:?}", sqlite(code));
        }
        for code in [
            ffi::SQLITE_CONSTRAINT,
            ffi::SQLITE_CORRUPT,
            ffi::SQLITE_MISUSE,
        ] {
            assert!(
                matches!(sqlite(code), Error::Fatal(_)),
                "{code}: {:?}",
                sqlite(code)
            );
        }
        let missing = classify(rusqlite::Error::QueryReturnedNoRows);
        assert!(missing.is_not_found() && !missing.is_retriable());
    }

    #[test]
    fn a_failure_a_job_raised_itself_stays_as_it_was() {
        let raised = Failure::from(Error::ConditionFailed("lease".into()));
        assert!(matches!(Error::from(raised), Error::ConditionFailed(m) if m == "lease"));
    }
}
