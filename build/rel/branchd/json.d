build/rel/branchd/json.o: branchd/json.c branchd/json.h
branchd/json.h:
