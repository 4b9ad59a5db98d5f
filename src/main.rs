use std::process::ExitCode;

// The run allocates many small strings (one per YAML key and value); mimalloc
// makes that markedly cheaper than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    image_update::cli::main(std::env::args_os())
}
