# proto/ fuzz targets: client envelopes and the cluster frame codec.
chat_fuzz_target(fuzz_envelope proto)
chat_fuzz_target(fuzz_cluster proto)
