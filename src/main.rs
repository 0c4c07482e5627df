fn main() -> std::process::ExitCode {
    runtrust::cli::main()
}
