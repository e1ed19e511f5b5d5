#[runtime::test]
#[test]
async fn marked_twice() {}

fn main() {}
