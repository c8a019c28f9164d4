build/asan/store/digest.o: store/digest.c store/digest.h
store/digest.h:
