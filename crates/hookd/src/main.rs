//! `hookd`: see `hookd --help`.

// mimalloc: the delivery hot path allocates many small, short-lived buffers;
// glibc malloc spent ~15% of the daemon's CPU on them (perf, make bench).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookd::main()
}
