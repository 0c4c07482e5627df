/// The allocator of the binary (not of the library, which embedders choose for themselves): see Cargo.toml.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    runtrust::cli::main()
}
