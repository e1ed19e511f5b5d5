#[runtime::test(threads = 2)]
async fn unknown_name() {}

#[runtime::main(flavor::multi_thread = 1)]
async fn main() {}
