use std::process::ExitCode;

fn main() -> ExitCode {
    image_update::cli::main(std::env::args_os())
}
