// Reading and writing the zip archives of exported models and their engine entry, so that tests can
// build variants of a real model file with consistent checksums (see docs/engine-format.md).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace nctest {

using Bytes = std::vector<unsigned char>;

inline uint32_t crc32(const unsigned char* data, size_t size) {
  static const std::vector<uint32_t> table = [] {
    std::vector<uint32_t> t(256);
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

inline uint16_t get16(const Bytes& b, size_t at) { return static_cast<uint16_t>(b.at(at) | (b.at(at + 1) << 8)); }
inline uint32_t get32(const Bytes& b, size_t at) { return get16(b, at) | (static_cast<uint32_t>(get16(b, at + 2)) << 16); }
inline void put16(Bytes& b, uint16_t v) {
  b.push_back(v & 0xFF);
  b.push_back(v >> 8);
}
inline void put32(Bytes& b, uint32_t v) {
  put16(b, v & 0xFFFF);
  put16(b, v >> 16);
}
inline void set32(Bytes& b, size_t at, uint32_t v) {
  for (int k = 0; k < 4; ++k) b[at + k] = (v >> (8 * k)) & 0xFF;
}

// One archive entry as stored: name, method, raw (possibly deflated) bytes and their zip fields.
struct Entry {
  std::string name;
  uint16_t method = 0;
  uint32_t crc = 0;
  uint32_t uncompressed = 0;
  Bytes raw;
  size_t central_offset = 0, local_offset = 0, data_offset = 0;  // where read_zip found it
};

// The entries of a (small, non-zip64) zip archive, read through its central directory.
inline std::vector<Entry> read_zip(const Bytes& zip) {
  size_t end = zip.size() - 22;
  while (get32(zip, end) != 0x06054b50) {
    if (end == 0) throw std::runtime_error("seed file is not a zip archive");
    --end;
  }
  const uint16_t count = get16(zip, end + 10);
  size_t at = get32(zip, end + 16);
  std::vector<Entry> entries;
  for (uint16_t i = 0; i < count; ++i) {
    if (get32(zip, at) != 0x02014b50) throw std::runtime_error("seed file: bad central directory");
    Entry e;
    e.method = get16(zip, at + 10);
    e.crc = get32(zip, at + 16);
    const uint32_t compressed = get32(zip, at + 20);
    e.uncompressed = get32(zip, at + 24);
    const uint16_t name_length = get16(zip, at + 28), extra = get16(zip, at + 30), comment = get16(zip, at + 32);
    const uint32_t local = get32(zip, at + 42);
    e.name.assign(reinterpret_cast<const char*>(&zip[at + 46]), name_length);
    const size_t data = local + 30 + get16(zip, local + 26) + get16(zip, local + 28);
    e.raw.assign(zip.begin() + data, zip.begin() + data + compressed);
    e.central_offset = at;
    e.local_offset = local;
    e.data_offset = data;
    entries.push_back(std::move(e));
    at += 46 + name_length + extra + comment;
  }
  return entries;
}

inline Entry stored(const std::string& name, const Bytes& bytes) {
  return Entry{name, 0, crc32(bytes.data(), bytes.size()), static_cast<uint32_t>(bytes.size()), bytes};
}

// A zip archive of `entries` (local headers, data, central directory, end record).
inline Bytes write_zip(const std::vector<Entry>& entries) {
  Bytes zip;
  std::vector<uint32_t> offsets;
  for (const Entry& e : entries) {
    offsets.push_back(static_cast<uint32_t>(zip.size()));
    put32(zip, 0x04034b50);
    put16(zip, 20), put16(zip, 0), put16(zip, e.method), put16(zip, 0), put16(zip, 0);
    put32(zip, e.crc), put32(zip, static_cast<uint32_t>(e.raw.size())), put32(zip, e.uncompressed);
    put16(zip, static_cast<uint16_t>(e.name.size())), put16(zip, 0);
    zip.insert(zip.end(), e.name.begin(), e.name.end());
    zip.insert(zip.end(), e.raw.begin(), e.raw.end());
  }
  const uint32_t directory = static_cast<uint32_t>(zip.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    put32(zip, 0x02014b50);
    put16(zip, 20), put16(zip, 20), put16(zip, 0), put16(zip, e.method), put16(zip, 0), put16(zip, 0);
    put32(zip, e.crc), put32(zip, static_cast<uint32_t>(e.raw.size())), put32(zip, e.uncompressed);
    put16(zip, static_cast<uint16_t>(e.name.size())), put16(zip, 0), put16(zip, 0), put16(zip, 0), put16(zip, 0);
    put32(zip, 0), put32(zip, offsets[i]);
    zip.insert(zip.end(), e.name.begin(), e.name.end());
  }
  const uint32_t directory_size = static_cast<uint32_t>(zip.size()) - directory;
  put32(zip, 0x06054b50);
  put16(zip, 0), put16(zip, 0), put16(zip, static_cast<uint16_t>(entries.size()));
  put16(zip, static_cast<uint16_t>(entries.size()));
  put32(zip, directory_size), put32(zip, directory), put16(zip, 0);
  return zip;
}

inline bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The engine entry split into its parts (docs/engine-format.md): header, JSON index, float data.
struct EngineEntry {
  uint32_t version = 0;
  nlohmann::json index;
  Bytes data;

  static EngineEntry parse(const Bytes& entry) {
    EngineEntry e;
    e.version = get32(entry, 8);
    const uint32_t index_bytes = get32(entry, 12), data_bytes = get32(entry, 16);
    e.index = nlohmann::json::parse(entry.begin() + 24, entry.begin() + 24 + index_bytes);
    e.data.assign(entry.begin() + 24 + index_bytes, entry.begin() + 24 + index_bytes + data_bytes);
    return e;
  }
  // Serialised with consistent sizes and checksum (the index padded to 4 bytes, as the exporter does).
  Bytes bytes() const {
    std::string text = index.dump();
    text.append((4 - text.size() % 4) % 4, ' ');
    Bytes out{'N', 'C', 'E', 'N', 'G', 'I', 'N', 'E'};
    put32(out, version), put32(out, static_cast<uint32_t>(text.size())), put32(out, static_cast<uint32_t>(data.size()));
    Bytes body(text.begin(), text.end());
    body.insert(body.end(), data.begin(), data.end());
    put32(out, crc32(body.data(), body.size()));
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }
};


// The archive `file` with its engine entry's index changed by `edit` (checksums made consistent).
template <typename Edit>
Bytes with_edited_index(const Bytes& file, Edit&& edit) {
  std::vector<Entry> entries = read_zip(file);
  for (Entry& entry : entries) {
    if (ends_with(entry.name, "/extra/neuralcomp_engine.bin")) {
      EngineEntry engine = EngineEntry::parse(entry.raw);
      edit(engine.index);
      entry = stored(entry.name, engine.bytes());
      return write_zip(entries);
    }
  }
  throw std::runtime_error("the archive has no engine entry");
}

// The archive `file` (as torch wrote it: same layout, same entry sizes) with its engine index's
// start_state_samples set to `samples`: the index text is edited in place and padded with spaces to
// its old length, and the entry's checksum and the zip CRC fields are recomputed.
inline Bytes with_start_state_in_place(const Bytes& file, int samples) {
  Bytes out = file;
  for (const Entry& entry : read_zip(file)) {
    if (!ends_with(entry.name, "/extra/neuralcomp_engine.bin")) continue;
    const uint32_t index_bytes = get32(entry.raw, 12), data_bytes = get32(entry.raw, 16);
    std::string index(entry.raw.begin() + 24, entry.raw.begin() + 24 + index_bytes);
    const std::string key = "\"start_state_samples\":";
    const size_t at = index.find(key);
    if (at == std::string::npos) throw std::runtime_error("the engine index has no start_state_samples");
    const size_t value_end = index.find_first_not_of("0123456789", at + key.size());
    index.replace(at + key.size(), value_end - at - key.size(), std::to_string(samples));
    if (index.size() > index_bytes) throw std::runtime_error("the new start_state_samples does not fit in place");
    index.append(index_bytes - index.size(), ' ');
    Bytes raw = entry.raw;
    std::copy(index.begin(), index.end(), raw.begin() + 24);
    set32(raw, 20, crc32(raw.data() + 24, static_cast<size_t>(index_bytes) + data_bytes));
    std::copy(raw.begin(), raw.end(), out.begin() + entry.data_offset);
    const uint32_t crc = crc32(raw.data(), raw.size());
    set32(out, entry.local_offset + 14, crc);
    set32(out, entry.central_offset + 16, crc);
    return out;
  }
  throw std::runtime_error("the archive has no engine entry");
}

}  // namespace nctest
