/* node/zk.c: being written (ZooKeeper membership and election) */
