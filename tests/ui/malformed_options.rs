#[runtime::main(2)]
async fn main() {}
