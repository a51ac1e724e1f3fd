/* store/mongo.c: being written */
