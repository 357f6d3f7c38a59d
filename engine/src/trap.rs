//! Who ended an execution with a failure: the host, which stopped the guest (a trap), or the
//! guest, which returned a failure of its own.
//!
//! Key items:
//! - [`TrapKind`]: why the host stopped a guest. Each kind names the `Aegis.*` error type the
//!   journal records (documented in `docs/errors/`), so those strings live in one place.
//! - [`Trap`]: a kind and the message that explains it.
//! - [`Fault`]: the failure that ends an execution, told apart by type. The history records a
//!   trap as the activation's own error too (`InvocationCompleted.Error`), and a guest's failure
//!   only as the execution's; deciding that from the error type's prefix would take the SDK's
//!   own `Aegis.PayloadDecode`, a failure the guest returns, for a trap.
//!
//! [`Fault::into_record`] is the one conversion to the stored [`ErrorRecord`]: these enums
//! never reach the journal, so they stay free to change.

use aegis_core::journal::ErrorRecord;

/// Why the host stopped a guest. Storage failures and superseded activations are not here:
/// they abandon the activation (see `activation::Ending::Abandoned`) instead of failing the
/// execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// The replay diverged from the journal.
    NonDeterminism,
    /// The guest broke the calling protocol (unknown operation, bad context, bad error type).
    InvalidCall,
    /// The guest tried to block (sleep, or wait on a clock).
    BlockingCall,
    /// The activation went over one of its tenant's budgets, or its writes do not fit one commit.
    ActivationLimitExceeded,
    /// The guest handed the host a payload that is not JSON.
    InvalidPayload,
    /// The guest used more CPU than one activation may.
    CpuDeadlineExceeded,
    /// The activation took longer, in wall-clock time, than one may.
    WallDeadlineExceeded,
    /// The guest tried to grow its memory past the cap.
    MemoryLimitExceeded,
    /// The guest's code trapped (a panic, `unreachable`, an out-of-bounds access).
    GuestTrap,
    /// The execution's component could not be loaded.
    ComponentUnavailable,
    /// The guest's process exited mid-activation (WASI `exit`), too many times in a row. One
    /// exit alone does not fail the execution: the activation runs again
    /// (`activation::Ending::Crashed`). Named as Lambda names a runtime that exited.
    RuntimeExit,
}

impl TrapKind {
    /// Every kind, for the check that each one is documented.
    pub const ALL: [TrapKind; 11] = [
        TrapKind::NonDeterminism,
        TrapKind::InvalidCall,
        TrapKind::BlockingCall,
        TrapKind::ActivationLimitExceeded,
        TrapKind::InvalidPayload,
        TrapKind::CpuDeadlineExceeded,
        TrapKind::WallDeadlineExceeded,
        TrapKind::MemoryLimitExceeded,
        TrapKind::GuestTrap,
        TrapKind::ComponentUnavailable,
        TrapKind::RuntimeExit,
    ];

    /// The error type recorded in the journal and shown to clients; a stable name, with a page
    /// of its own in `docs/errors/`.
    pub fn error_type(self) -> &'static str {
        match self {
            TrapKind::NonDeterminism => "Aegis.NonDeterminism",
            TrapKind::InvalidCall => "Aegis.InvalidCall",
            TrapKind::BlockingCall => "Aegis.BlockingCall",
            TrapKind::ActivationLimitExceeded => "Aegis.ActivationLimitExceeded",
            TrapKind::InvalidPayload => "Aegis.InvalidPayload",
            TrapKind::CpuDeadlineExceeded => "Aegis.CpuDeadlineExceeded",
            TrapKind::WallDeadlineExceeded => "Aegis.WallDeadlineExceeded",
            TrapKind::MemoryLimitExceeded => "Aegis.MemoryLimitExceeded",
            TrapKind::GuestTrap => "Aegis.Trap",
            TrapKind::ComponentUnavailable => "Aegis.ComponentUnavailable",
            TrapKind::RuntimeExit => "Runtime.ExitError",
        }
    }
}

/// The host stopped the guest.
#[derive(Clone, Debug, PartialEq)]
pub struct Trap {
    pub kind: TrapKind,
    pub message: String,
}

impl Trap {
    pub fn new(kind: TrapKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The stored form: the kind's error type and the message (cut as every record is).
    pub fn into_record(self) -> ErrorRecord {
        ErrorRecord::new(self.kind.error_type(), self.message)
    }
}

/// A failure that ends an execution, and whose it is.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// The guest failed by itself: it returned an error (its SDK's own ones included, such as
    /// `Aegis.PayloadDecode` for input that does not decode), or a result the host will not
    /// store (`Execution.ResultTooLarge`).
    Guest(ErrorRecord),
    /// The host stopped the guest.
    Host(Trap),
}

impl Fault {
    /// Whether the host stopped the guest (the activation itself failed), rather than the guest
    /// ending with a failure of its own.
    pub fn is_trap(&self) -> bool {
        matches!(self, Fault::Host(_))
    }

    pub fn error_type(&self) -> &str {
        match self {
            Fault::Guest(record) => &record.error_type,
            Fault::Host(trap) => trap.kind.error_type(),
        }
    }

    /// The stored form of the failure.
    pub fn into_record(self) -> ErrorRecord {
        match self {
            Fault::Guest(record) => record,
            Fault::Host(trap) => trap.into_record(),
        }
    }
}

impl From<Trap> for Fault {
    fn from(trap: Trap) -> Self {
        Fault::Host(trap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn docs() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors"))
    }

    #[test]
    fn every_trap_kind_has_a_page_and_a_row_in_the_index() {
        let index = std::fs::read_to_string(docs().join("README.md")).unwrap();
        for kind in TrapKind::ALL {
            let name = kind.error_type();
            let page = docs().join(format!("{name}.md"));
            let text = std::fs::read_to_string(&page)
                .unwrap_or_else(|e| panic!("{kind:?}: no page {}: {e}", page.display()));
            assert!(text.starts_with(&format!("# `{name}`")), "{name}: {text}");
            assert!(
                index.contains(&format!("| `{name}` | [{name}.md]({name}.md) |")),
                "{name} is not in docs/errors/README.md"
            );
        }
    }

    #[test]
    fn every_host_error_page_names_a_trap_kind() {
        let known: BTreeSet<&str> = TrapKind::ALL.iter().map(|k| k.error_type()).collect();
        assert_eq!(
            known.len(),
            TrapKind::ALL.len(),
            "two kinds share an error type"
        );
        for entry in std::fs::read_dir(docs()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if let Some(error_type) = name
                .strip_suffix(".md")
                .filter(|n| n.starts_with("Aegis.") || n.starts_with("Runtime."))
            {
                assert!(known.contains(error_type), "{name} documents no trap kind");
            }
        }
    }

    #[test]
    fn only_a_host_trap_is_a_trap_whatever_its_error_type() {
        let decode = Fault::Guest(ErrorRecord::new("Aegis.PayloadDecode", "bad input"));
        assert!(!decode.is_trap());
        assert_eq!(decode.error_type(), "Aegis.PayloadDecode");
        let trap = Fault::from(Trap::new(TrapKind::GuestTrap, "unreachable"));
        assert!(trap.is_trap());
        let record = trap.into_record();
        assert_eq!(record.error_type, "Aegis.Trap");
        assert_eq!(record.error_message, "unreachable");
    }
}
