// Containing libhdf5's crashes on damaged files that cannot be sealed (base weights come
// from anywhere: h5py, converters, downloads). libhdf5 1.10 trusts a file's metadata and
// can read uninitialised memory or segfault on a corrupted object header, datatype or chunk
// index, which would take down the whole MPI job. So before the real read, a separate process
// (this program re-executed, see h5_probe.cpp) parses everything the read will parse; if it
// dies, the caller throws instead.
#pragma once
#include <string>
#include <vector>

namespace lora {

// Starts a child process that opens `path` with libhdf5 and, for each of `datasets` present, opens it
// and queries its datatype, dataspace, creation properties (layout, filters) and storage
// size, walks its chunk index when chunked, and reads its first and last element; then it
// _exits. HDF5 errors in the child are ignored: the real read reports them with a better
// message. Throws InputError "<path>: libhdf5 crashed while parsing this file's metadata
// (corrupted HDF5?)" when the child dies from a signal, or "... did not finish within N s"
// when it runs past `timeout_s` (it is then killed). Safe after MPI_Init and with threads
// running: the child is a fresh exec of this program that probes before its main, calls no
// MPI and leaves with _exit.
void probe_hdf5_file(const std::string& path, const std::vector<std::string>& datasets, double timeout_s = 60);

}  // namespace lora
