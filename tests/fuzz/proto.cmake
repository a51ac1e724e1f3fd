# proto/ fuzz targets: client envelopes, the cluster frame codec, the JSON printer.
chat_fuzz_target(fuzz_envelope proto)
chat_fuzz_target(fuzz_cluster proto)
chat_fuzz_target(fuzz_json proto)
