//! `#[runtime::test]` and `#[runtime::main]` expand to code that really runs on
//! the runtime, and a bad use fails to compile with a message that says what
//! is wrong (the cases under `ui/`).

use std::error::Error;
use std::io;
use std::rc::Rc;

#[test]
fn bad_uses_fail_to_compile_with_a_clear_message() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}

#[runtime::test]
async fn body_awaits_a_yield_and_a_spawned_task() {
    runtime::yield_now().await;
    let sum = runtime::spawn(async { 1 + 1 }).await.unwrap();
    assert_eq!(sum, 2);
}

#[runtime::test(cores = 2)]
async fn cores_option_starts_a_runtime_with_that_many_cores() {
    assert_eq!(runtime::core_count(), 2);
    assert_eq!(runtime::core_id(), 0);
    let there = runtime::spawn_on(1, || async { runtime::core_id() });
    assert_eq!(there.await.unwrap(), 1);
}

#[runtime::test]
async fn a_test_runs_on_one_core_by_default() {
    assert_eq!(runtime::core_count(), 1);
}

#[runtime::test(ring_entries = 64)]
async fn ring_entries_option_builds_a_working_runtime() {
    let handles: Vec<_> = (0..100u32)
        .map(|i| runtime::spawn(async move { i * 2 }))
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap();
    }
    assert_eq!(total, 99 * 100);
}

#[runtime::test(cores = 1, ring_entries = 32)]
async fn a_test_may_return_a_result_and_use_the_question_mark() -> Result<(), io::Error> {
    runtime::yield_now().await;
    let n: u32 = "41".parse().map_err(io::Error::other)?;
    assert_eq!(n + 1, 42);
    Ok(())
}

#[runtime::test(ring_entries = 40_000)]
#[should_panic(expected = "runtime: could not start the runtime: ")]
async fn a_runtime_that_cannot_start_fails_the_test_with_the_reason() {
    unreachable!("the body must not run without a runtime");
}

#[runtime::test]
#[should_panic(expected = "the body's own panic")]
async fn attributes_after_ours_are_kept() {
    runtime::yield_now().await;
    panic!("the body's own panic");
}

/// `#[runtime::main]` also fits functions not named `main` (examples and
/// benches use it so); the plain `fn` it makes keeps this doc comment, its
/// visibility and its return type.
#[runtime::main(cores = 1, ring_entries = 32)]
pub(crate) async fn main_like() -> Result<u32, Box<dyn Error>> {
    // Not `Send`, and held across awaits: the main future never leaves this thread.
    let half = Rc::new("21".parse::<u32>()?);
    runtime::yield_now().await;
    let two = runtime::spawn(async { 2 }).await?;
    Ok(two * *half)
}

#[runtime::main(cores = 1)]
async fn main_whose_body_fails() -> Result<(), Box<dyn Error>> {
    runtime::yield_now().await;
    "not a number".parse::<u32>()?;
    unreachable!("the `?` above returns early");
}

#[test]
fn runtime_main_runs_the_body_and_returns_its_value() {
    assert_eq!(main_like().unwrap(), 42);
    let error = main_whose_body_fails().unwrap_err();
    assert!(error.to_string().contains("invalid digit"), "{error}");
}
