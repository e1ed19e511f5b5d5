#[runtime::test]
struct NotAFunction;

fn main() {}
