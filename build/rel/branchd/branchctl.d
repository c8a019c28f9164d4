build/rel/branchd/branchctl.o: branchd/branchctl.c branchd/ctlproto.h \
 branchd/json.h
branchd/ctlproto.h:
branchd/json.h:
