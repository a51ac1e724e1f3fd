# bench/ unit tests: histogram, result merge, target guard (no network).
chat_unit_test(test_bench_stats bench testutil)
