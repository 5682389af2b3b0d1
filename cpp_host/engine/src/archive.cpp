#include "archive.hpp"

#include <array>
#include <cstring>

#include "neuralcomp/engine.hpp"

namespace neuralcomp::detail {
namespace {

constexpr uint32_t kEndOfCentralDirectory = 0x06054b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kZip64EndOfCentralDirectory = 0x06064b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kLocalHeader = 0x04034b50;

uint16_t u16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t u32(const unsigned char* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t u64(const unsigned char* p) { return static_cast<uint64_t>(u32(p)) | (static_cast<uint64_t>(u32(p + 4)) << 32); }

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

[[noreturn]] void refuse(const std::string& source, const std::string& why) {
  throw ModelFileError(source + ": " + why);
}

// Values that may be 0xFFFF/0xFFFFFFFF in the classic record and then live in the zip64 one.
struct Directory {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
};

Directory read_directory(const unsigned char* data, size_t size, const std::string& source) {
  if (size < 22) refuse(source, "not a model archive (too short to be a zip file; truncated?)");
  // the end record is within the last 22 + 65535 bytes (its comment is at most 65535 bytes)
  const size_t lowest = size > 22 + 65535 ? size - 22 - 65535 : 0;
  size_t at = size - 22;
  while (true) {
    if (u32(data + at) == kEndOfCentralDirectory && at + 22 + u16(data + at + 20) == size) break;
    if (at == lowest) refuse(source, "not a model archive (no zip end-of-directory record; truncated or foreign file)");
    --at;
  }
  Directory dir{u16(data + at + 10), u32(data + at + 12), u32(data + at + 16)};
  if (dir.entries == 0xFFFF || dir.size == 0xFFFFFFFF || dir.offset == 0xFFFFFFFF) {
    if (at < 20 || u32(data + at - 20) != kZip64Locator) refuse(source, "zip64 archive without its locator");
    const uint64_t record = u64(data + at - 20 + 8);
    if (size < 56 || record > size - 56 || u32(data + record) != kZip64EndOfCentralDirectory) {
      refuse(source, "zip64 end-of-directory record out of bounds (truncated file?)");
    }
    dir = Directory{u64(data + record + 32), u64(data + record + 40), u64(data + record + 48)};
  }
  if (dir.offset > size || dir.size > size - dir.offset) {
    refuse(source, "zip central directory out of bounds (truncated file?)");
  }
  return dir;
}

}  // namespace

uint32_t crc32(const unsigned char* data, size_t size, uint32_t crc) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

ArchiveEntry find_entry(const unsigned char* data, size_t size, const std::string& suffix, const std::string& source) {
  const Directory dir = read_directory(data, size, source);
  size_t at = static_cast<size_t>(dir.offset);
  const size_t end = static_cast<size_t>(dir.offset + dir.size);
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (end - at < 46 || u32(data + at) != kCentralHeader) refuse(source, "corrupt zip central directory");
    const uint16_t method = u16(data + at + 10);
    const uint32_t crc = u32(data + at + 16);
    uint64_t compressed = u32(data + at + 20);
    uint64_t uncompressed = u32(data + at + 24);
    const size_t name_length = u16(data + at + 28);
    const size_t extra_length = u16(data + at + 30);
    const size_t comment_length = u16(data + at + 32);
    uint64_t local = u32(data + at + 42);
    if (end - at - 46 < name_length + extra_length + comment_length) refuse(source, "corrupt zip central directory");
    const char* name = reinterpret_cast<const char*>(data + at + 46);
    const bool match = name_length >= suffix.size() &&
                       std::memcmp(name + name_length - suffix.size(), suffix.data(), suffix.size()) == 0;
    if (match) {
      // zip64 sizes/offset live in the extra field (id 1) when the 32-bit fields are saturated
      const unsigned char* extra = data + at + 46 + name_length;
      for (size_t e = 0; e + 4 <= extra_length;) {
        const uint16_t id = u16(extra + e), length = u16(extra + e + 2);
        if (e + 4 + length > extra_length) break;
        if (id == 1) {
          size_t f = e + 4;
          if (uncompressed == 0xFFFFFFFF && f + 8 <= e + 4 + length) { uncompressed = u64(extra + f); f += 8; }
          if (compressed == 0xFFFFFFFF && f + 8 <= e + 4 + length) { compressed = u64(extra + f); f += 8; }
          if (local == 0xFFFFFFFF && f + 8 <= e + 4 + length) { local = u64(extra + f); }
        }
        e += 4 + length;
      }
      if (method != 0 || compressed != uncompressed) {
        refuse(source, "entry '" + suffix + "' is compressed; the engine reads stored entries only");
      }
      if (local > size || size - local < 30 || u32(data + local) != kLocalHeader) {
        refuse(source, "entry '" + suffix + "' has a bad local header (truncated or corrupt file)");
      }
      const uint64_t start = local + 30 + u16(data + local + 26) + u16(data + local + 28);
      if (start > size || size - start < uncompressed) {
        refuse(source, "entry '" + suffix + "' runs past the end of the file (truncated)");
      }
      const unsigned char* bytes = data + start;
      if (crc32(bytes, static_cast<size_t>(uncompressed)) != crc) {
        refuse(source, "entry '" + suffix + "' fails its CRC-32 check (corrupt file)");
      }
      return ArchiveEntry{bytes, static_cast<size_t>(uncompressed), true};
    }
    at += 46 + name_length + extra_length + comment_length;
  }
  return ArchiveEntry{};
}

}  // namespace neuralcomp::detail
