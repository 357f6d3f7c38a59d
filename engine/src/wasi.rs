//! The WASI a guest gets: only what a workflow needs, and nothing it could block on.
//!
//! A Rust guest built for `wasm32-wasip2` imports the CLI world's standard streams,
//! environment and exit, `wasi:io`, and (when it reads the clock, the file system or randomness)
//! clocks, `wasi:filesystem` and `wasi:random`. Those are linked, against an empty sandbox
//! (`activation::sandbox`). `wasi:sockets` is not linked at all: a component that imports it is
//! refused at upload, naming the import, instead of being given sockets that could hold an
//! activation open.
//!
//! Blocking is the attack this module closes. wasmtime-wasi's `monotonic-clock` starts a real
//! timer for `subscribe-duration` whatever clock is installed, so `std::thread::sleep` in a guest
//! used to hold an activation slot for as long as it asked while using no CPU, out of reach of
//! the CPU deadline. Here the monotonic clock is frozen like the wall clock, and a subscription
//! that would wait (a non-zero duration, or an instant after the frozen now) ends the
//! activation at once with [`Failure::Blocking`], which the execution records as
//! `Aegis.BlockingCall`. A zero-length subscription (the usual way to poll without waiting) is
//! ready at once. Every other pollable a guest can reach is ready at once too: stdin is empty
//! and closed, stdout and stderr are in-memory pipes, and there are no files or sockets.

use super::host::{Failure, HostState};
use wasmtime::component::{HasData, HasSelf, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView as _;
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView as _};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock::{self, Duration, Instant};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView as _};

/// Links the WASI interfaces a guest may import.
///
/// # Errors
/// When an interface cannot be added (a wasmtime-wasi mismatch, found at start-up).
pub fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let l = linker;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(l, HostState::clocks)?;
    monotonic_clock::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    filesystem::preopens::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    sync::filesystem::types::add_to_linker::<HostState, WasiFilesystem>(l, HostState::filesystem)?;
    random::random::add_to_linker::<HostState, WasiRandom>(l, HostState::random)?;
    random::insecure::add_to_linker::<HostState, WasiRandom>(l, HostState::random)?;
    random::insecure_seed::add_to_linker::<HostState, WasiRandom>(l, HostState::random)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    sync::io::error::add_to_linker::<HostState, Io>(l, |s| s.ctx().table)?;
    sync::io::poll::add_to_linker::<HostState, Io>(l, |s| s.ctx().table)?;
    sync::io::streams::add_to_linker::<HostState, Io>(l, |s| s.ctx().table)?;
    Ok(())
}

/// `wasi:io` works on the resource table alone.
struct Io;

impl HasData for Io {
    type Data<'a> = &'a mut ResourceTable;
}

/// A pollable that is always ready: what a zero-length clock subscription gives.
struct Ready;

#[wasmtime_wasi::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// The frozen monotonic clock reads this, always.
const FROZEN_NOW: Instant = 0;

impl HostState {
    fn ready_pollable(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let table = self.ctx().table;
        let ready = table.push(Ready)?;
        subscribe(table, ready)
    }

    fn refuse_to_block(&mut self, what: String) -> wasmtime::Error {
        self.activation.trap(Failure::Blocking(format!(
            "{what}: a workflow cannot block (its clocks are frozen); wait durably with the SDK's \
             `ctx.wait`, which ends the activation and resumes it when the time comes"
        )))
    }
}

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<Instant> {
        Ok(FROZEN_NOW)
    }

    fn resolution(&mut self) -> wasmtime::Result<Duration> {
        Ok(1_000_000_000)
    }

    fn subscribe_instant(&mut self, when: Instant) -> wasmtime::Result<Resource<DynPollable>> {
        if when > FROZEN_NOW {
            return Err(self.refuse_to_block(format!(
                "the guest subscribed to monotonic-clock instant {when} ns"
            )));
        }
        self.ready_pollable()
    }

    fn subscribe_duration(
        &mut self,
        duration: Duration,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        if duration > 0 {
            return Err(self.refuse_to_block(format!(
                "the guest asked to sleep for {duration} ns (monotonic-clock subscribe-duration)"
            )));
        }
        self.ready_pollable()
    }
}
