// A minimal reader of the zip archives that torch.jit.save writes: finds one stored (uncompressed)
// entry by name suffix and returns its bytes after checking bounds and CRC-32. Private to the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace neuralcomp::detail {

struct ArchiveEntry {
  const unsigned char* data = nullptr;
  size_t size = 0;
  bool found = false;
};

// Finds the entry whose name ends with `suffix` in the archive bytes. Throws ModelFileError (with
// `source` in the message) when the bytes are not a readable zip, or the entry is compressed,
// out of bounds or fails its CRC. Returns found = false when no entry has that suffix.
ArchiveEntry find_entry(const unsigned char* archive, size_t size, const std::string& suffix,
                        const std::string& source);

uint32_t crc32(const unsigned char* data, size_t size, uint32_t crc = 0);

}  // namespace neuralcomp::detail
