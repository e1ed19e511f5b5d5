#[runtime::main(cores = 1, ring_entries = 64, cores = 2)]
async fn main() {}
