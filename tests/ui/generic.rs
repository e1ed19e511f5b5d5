#[runtime::test]
async fn generic_test<T: Default>() {
    let _ = T::default();
}

#[runtime::main]
async fn main<T>() {}
