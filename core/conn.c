/* core/conn.c: being written */
