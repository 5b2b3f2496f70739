//! The hookd binary, built inside the test package so the end-to-end tests
//! always run the current code (`CARGO_BIN_EXE_hookd-e2e`).

fn main() -> std::process::ExitCode {
    hookd::main()
}
