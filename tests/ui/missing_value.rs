#[runtime::main(cores)]
async fn main() {}

#[runtime::test(ring_entries(64))]
async fn value_in_parentheses() {}
