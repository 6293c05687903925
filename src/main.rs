//! The `gatehouse` binary: parses the command line and hands over to the library.

/// jemalloc instead of the system allocator: a token request makes many small, short-lived
/// allocations across worker threads, where glibc's malloc cost 15–30 % of the token
/// endpoint's throughput (README, *Performance*). It keeps about 4 MB more resident.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    gatehouse::cli::main()
}
