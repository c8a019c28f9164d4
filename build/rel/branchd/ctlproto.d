build/rel/branchd/ctlproto.o: branchd/ctlproto.c branchd/ctlproto.h
branchd/ctlproto.h:
