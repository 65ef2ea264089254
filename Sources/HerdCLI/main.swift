import Herd

// OpenBLAS picks its kernels when it loads: restart with the right ones
// before anything else runs (see BLASEnvironment).
BLASEnvironment.reexecWithFastKernelsIfNeeded()
Spawn.dieWithParentIfAsked()
HerdCommand.main()
