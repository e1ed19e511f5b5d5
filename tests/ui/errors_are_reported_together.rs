#[runtime::test(cores = 0, threads = 2)]
fn not_async_and_takes(n: u32) {
    assert_eq!(n, 1);
}

fn main() {}
