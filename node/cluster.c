/* node/cluster.c: being written (cluster link and routing) */
