#[runtime::main(cores = "two")]
async fn main() {}

#[runtime::test(cores = 0)]
async fn zero_cores() {}

#[runtime::test(ring_entries = 0)]
async fn zero_ring_entries() {}

#[runtime::test(ring_entries = 5_000_000_000)]
async fn ring_entries_beyond_u32() {}

#[runtime::test(cores = -1)]
async fn negative_cores() {}

#[runtime::test(cores = 2u8)]
async fn wrong_suffix() {}
