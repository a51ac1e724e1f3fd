/* proto/cluster.c: being written */
