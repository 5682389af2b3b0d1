// Loader fuzzing: thousands of damaged model files thrown at Model::load_memory. Each one either
// loads (and an engine built from it then processes audio) or is refused with ModelFileError;
// anything else (another exception, a sanitizer report, a crash, a case that takes seconds) fails.
// Built with AddressSanitizer and UBSan where the compiler supports them (tests/CMakeLists.txt).
//
// Mutations: raw bytes of the real exported file (bit flips, byte overwrites, truncation, inserted
// and deleted bytes, random garbage) and of a rebuilt archive, plus mutations that keep every
// checksum valid so that they reach the index and data parser: JSON values replaced, removed or
// retyped, header fields (layout version, sizes, magic), non-finite weights, missing and
// compressed entries.
//
// Usage: test_loader_fuzz MODEL_FILE... [--cases N]   (NEURALCOMP_TEST_SEED replays a run)
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "neuralcomp/engine.hpp"
#include "test_archive.hpp"
#include "test_support.hpp"

using neuralcomp::Engine;
using neuralcomp::Model;
using neuralcomp::ModelFileError;
using nctest::check;

namespace {

using namespace nctest;

// A seed model: its file, its entries and its parsed engine entry.
struct Seed {
  std::string path;
  Bytes file;
  std::vector<Entry> entries;
  size_t engine_index = 0;
  EngineEntry engine;
  Bytes rebuilt;  // the same entries as this test writes archives

  // The archive with the engine entry replaced by `entry` (checksums made consistent).
  Bytes with_engine_entry(const Bytes& entry) const {
    std::vector<Entry> copy = entries;
    copy[engine_index] = stored(copy[engine_index].name, entry);
    return write_zip(copy);
  }
};

const int64_t kInteresting[] = {0, -1, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1023, 1024, 1025, 16384, 16385,
                                65535, 1 << 20, (1 << 26) + 64, 2147483647LL, 2147483648LL, 4294967295LL,
                                4294967296LL, -2147483648LL, 9223372036854775807LL};

nlohmann::json interesting_value(std::mt19937_64& rng) {
  switch (rng() % 8) {
    case 0: return "paper";
    case 1: return nlohmann::json::array();
    case 2: return nlohmann::json::object();
    case 3: return nullptr;
    case 4: return (rng() % 2) == 0;
    case 5: return static_cast<double>(rng() % 1000) / 7.0 - 50.0;
    case 6: return 1e300;
    default: return kInteresting[rng() % (sizeof kInteresting / sizeof kInteresting[0])];
  }
}

// Every JSON node of the index by pointer (so that one can be picked at random).
void collect(nlohmann::json& node, const nlohmann::json::json_pointer& at, std::vector<nlohmann::json::json_pointer>& out) {
  out.push_back(at);
  if (node.is_object()) {
    for (auto& [key, value] : node.items()) collect(value, at / key, out);
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) collect(node[i], at / i, out);
  }
}

// One damaged file and what was done to it.
struct Case {
  Bytes file;
  std::string what;
};

Case raw_mutation(const Bytes& original, const std::string& label, std::mt19937_64& rng) {
  Bytes b = original;
  // half the positions in the last 4 kB (central directory, end record) or the first 512 bytes
  auto position = [&](size_t size) -> size_t {
    if (size == 0) return 0;
    switch (rng() % 4) {
      case 0: return size - 1 - rng() % std::min<size_t>(size, 4096);
      case 1: return rng() % std::min<size_t>(size, 512);
      default: return rng() % size;
    }
  };
  switch (rng() % 7) {
    case 0: {
      const int flips = 1 + static_cast<int>(rng() % 8);
      for (int i = 0; i < flips; ++i) b[position(b.size())] ^= static_cast<unsigned char>(1u << (rng() % 8));
      return {b, label + ": " + std::to_string(flips) + " bit flip(s)"};
    }
    case 1: {
      const unsigned char values[] = {0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE};
      const int bytes = 1 + static_cast<int>(rng() % 6);
      for (int i = 0; i < bytes; ++i) {
        b[position(b.size())] = rng() % 2 ? values[rng() % 6] : static_cast<unsigned char>(rng());
      }
      return {b, label + ": " + std::to_string(bytes) + " byte(s) overwritten"};
    }
    case 2: {
      const size_t keep = rng() % 3 == 0 ? b.size() - 1 - rng() % std::min<size_t>(b.size(), 200) : rng() % b.size();
      b.resize(keep);
      return {b, label + ": truncated to " + std::to_string(keep) + " bytes"};
    }
    case 3: {
      const size_t at = position(b.size());
      const size_t count = 1 + rng() % 64;
      Bytes inserted(count);
      for (auto& v : inserted) v = static_cast<unsigned char>(rng());
      b.insert(b.begin() + at, inserted.begin(), inserted.end());
      return {b, label + ": " + std::to_string(count) + " byte(s) inserted at " + std::to_string(at)};
    }
    case 4: {
      const size_t at = position(b.size());
      const size_t count = std::min<size_t>(1 + rng() % 64, b.size() - at);
      b.erase(b.begin() + at, b.begin() + at + count);
      return {b, label + ": " + std::to_string(count) + " byte(s) deleted at " + std::to_string(at)};
    }
    case 5: {
      Bytes garbage(rng() % 4096);
      for (auto& v : garbage) v = static_cast<unsigned char>(rng());
      if (garbage.size() >= 4 && rng() % 2) {  // sometimes with a zip end record at its end
        garbage.resize(std::max<size_t>(garbage.size(), 22));
        set32(garbage, garbage.size() - 22, 0x06054b50);
        garbage[garbage.size() - 2] = garbage[garbage.size() - 1] = 0;
      }
      return {garbage, "random garbage of " + std::to_string(garbage.size()) + " bytes"};
    }
    default: {  // a whole 32-bit field replaced with an interesting value
      const size_t at = position(b.size() > 4 ? b.size() - 4 : 1);
      if (b.size() >= 4) set32(b, at, static_cast<uint32_t>(kInteresting[rng() % 29]));
      return {b, label + ": 32-bit field at " + std::to_string(at) + " replaced"};
    }
  }
}

Case structured_mutation(const Seed& seed, std::mt19937_64& rng) {
  EngineEntry e = seed.engine;
  switch (rng() % 6) {
    case 0:
    case 1: {  // a JSON node replaced, removed or retyped; checksums stay valid
      std::vector<nlohmann::json::json_pointer> nodes;
      collect(e.index, nlohmann::json::json_pointer(), nodes);
      const auto& target = nodes[1 + rng() % (nodes.size() - 1)];
      std::string what;
      if (rng() % 4 == 0) {
        nlohmann::json& parent = e.index.at(target.parent_pointer());
        if (parent.is_object()) {
          parent.erase(target.back());
        } else {
          parent.erase(std::stoul(target.back()));
        }
        what = "removed";
      } else {
        e.index.at(target) = interesting_value(rng);
        what = "set to " + e.index.at(target).dump();
      }
      return {seed.with_engine_entry(e.bytes()), seed.path + ": index " + target.to_string() + " " + what};
    }
    case 2: {  // header: layout version, sizes or magic (entry checksum kept or not)
      Bytes entry = e.bytes();
      const int field = static_cast<int>(rng() % 4);
      const uint32_t values[] = {0, 1, 2, 3, 0xFFFFFFFFu, 0x80000000u, static_cast<uint32_t>(entry.size()),
                                 static_cast<uint32_t>(entry.size() - 23), 4, 5};
      const uint32_t value = values[rng() % 10];
      if (field == 0) entry[rng() % 8] ^= 0x20;
      else set32(entry, 4 + 4 * field, value);
      return {seed.with_engine_entry(entry), seed.path + ": engine header field " + std::to_string(field) + " = " +
                                                 std::to_string(value)};
    }
    case 3: {  // weights: non-finite or extreme values, checksums valid
      const float values[] = {std::nanf(""), INFINITY, -INFINITY, 3e38f, -3e38f, 1e-45f, 0.0f};
      const size_t count = e.data.size() / 4;
      const int changes = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < changes; ++i) {
        const float v = values[rng() % 7];
        std::memcpy(&e.data[4 * (rng() % count)], &v, 4);
      }
      return {seed.with_engine_entry(e.bytes()), seed.path + ": " + std::to_string(changes) + " weight(s) replaced"};
    }
    case 4: {  // the index bytes themselves flipped, checksums recomputed (invalid JSON mostly)
      std::string text = e.index.dump();
      const int flips = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < flips; ++i) text[rng() % text.size()] ^= static_cast<char>(1u << (rng() % 7));
      text.append((4 - text.size() % 4) % 4, ' ');
      Bytes entry{'N', 'C', 'E', 'N', 'G', 'I', 'N', 'E'};
      put32(entry, e.version), put32(entry, static_cast<uint32_t>(text.size())),
          put32(entry, static_cast<uint32_t>(e.data.size()));
      Bytes body(text.begin(), text.end());
      body.insert(body.end(), e.data.begin(), e.data.end());
      put32(entry, crc32(body.data(), body.size()));
      entry.insert(entry.end(), body.begin(), body.end());
      return {seed.with_engine_entry(entry), seed.path + ": " + std::to_string(flips) + " index byte(s) flipped"};
    }
    default: {  // the engine entry truncated or extended, zip checksums valid
      Bytes entry = e.bytes();
      if (rng() % 2) entry.resize(rng() % entry.size());
      else entry.resize(entry.size() + 1 + rng() % 100, 0);
      return {seed.with_engine_entry(entry), seed.path + ": engine entry resized to " + std::to_string(entry.size())};
    }
  }
}

// Loads one case: true when it loaded and processed, false when refused with ModelFileError.
// Anything else propagates (and fails the test).
bool try_case(const Case& c, std::string* refusal) {
  std::shared_ptr<const Model> model;
  try {
    model = Model::load_memory(c.file.data(), c.file.size(), "fuzz case");
  } catch (const ModelFileError& e) {
    *refusal = e.what();
    return false;
  }
  Engine engine(model, 2, 128);
  engine.set_linked(true);
  nctest::Planar audio = nctest::program_material(2, 300, 5);
  audio.point(0);
  const int key_rows = 2 * model->sidechain_channels();  // a keyed model gets its key
  nctest::Planar key = nctest::program_material(key_rows, 300, 6);
  check(engine.process(audio.in.data(), audio.out.data(), 2, 300, key_rows ? key.in.data() : nullptr, key_rows),
        "process refused a valid call");
  return true;
}

void save_case(const Case& c, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(c.file.data()), static_cast<std::streamsize>(c.file.size()));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> paths;
  int cases = 3000;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--cases" && i + 1 < argc) cases = std::atoi(argv[++i]);
    else paths.push_back(argv[i]);
  }
  if (paths.empty()) {
    std::fprintf(stderr, "usage: %s MODEL_FILE... [--cases N]\n", argv[0]);
    return 2;
  }
  const uint64_t run_seed = nctest::test_seed(424242);
  std::fprintf(stderr, "seed %llu (replay with NEURALCOMP_TEST_SEED=%llu)\n", static_cast<unsigned long long>(run_seed),
               static_cast<unsigned long long>(run_seed));
  nctest::Runner runner;
  std::vector<Seed> seeds;
  runner.run("seed models load", [&] {
    for (const std::string& path : paths) {
      Seed s;
      s.path = path + " (start state shortened)";
      // as exported, with the start state cut to 2 frames in place: a case that loads then costs
      // milliseconds to prepare instead of a second of audio through a sanitized engine
      s.file = nctest::with_start_state_in_place(nctest::read_bytes(path), 128);
      s.entries = read_zip(s.file);
      bool found = false;
      for (size_t i = 0; i < s.entries.size(); ++i) {
        if (ends_with(s.entries[i].name, "/extra/neuralcomp_engine.bin")) {
          s.engine_index = i;
          found = true;
        }
      }
      check(found, path + " has no engine entry");
      s.engine = EngineEntry::parse(s.entries[s.engine_index].raw);
      s.rebuilt = s.with_engine_entry(s.engine.bytes());
      // the real file, and the same archive as this test writes it, both load
      std::string refusal;
      check(try_case({nctest::read_bytes(path), path}, &refusal), path + " does not load: " + refusal);
      check(try_case({s.file, s.path}, &refusal), s.path + " does not load: " + refusal);
      check(try_case({s.rebuilt, path + " rebuilt"}, &refusal),
            path + " rebuilt by the test does not load: " + refusal);
      seeds.push_back(std::move(s));
    }
  });
  if (seeds.empty()) return runner.exit_code();

  // Cases whose refusal message is part of the contract.
  runner.run("specific damaged files are refused with the reason", [&] {
    const Seed& s = seeds[0];
    auto expect_refusal = [&](const Bytes& file, const std::string& what, const std::string& phrase) {
      std::string refusal;
      bool loaded = false;
      try {
        loaded = try_case({file, what}, &refusal);
      } catch (const std::exception& e) {
        throw nctest::CheckFailure(what + ": threw a " + typeid(e).name() + " instead of ModelFileError: " + e.what());
      }
      check(!loaded, what + " loaded");
      check(refusal.find(phrase) != std::string::npos, what + ": the message '" + refusal + "' does not say '" + phrase + "'");
      check(refusal.find("fuzz case") != std::string::npos, what + ": the message '" + refusal + "' does not name the file");
    };
    EngineEntry newer = s.engine;
    newer.version = neuralcomp::kEngineFormatVersion + 1;
    expect_refusal(s.with_engine_entry(newer.bytes()), "an engine entry with a newer layout version", "newer");
    std::vector<Entry> without = s.entries;
    without.erase(without.begin() + s.engine_index);
    expect_refusal(write_zip(without), "a zip without the engine entry", "re-export");
    std::vector<Entry> foreign;
    for (const Entry& e : s.entries)
      if (!ends_with(e.name, ".json") && !ends_with(e.name, ".bin")) foreign.push_back(e);
    expect_refusal(write_zip(foreign), "a zip without neuralcomp entries", "not a neuralcomp model");
    std::vector<Entry> compressed = s.entries;
    compressed[s.engine_index].method = 8;
    expect_refusal(write_zip(compressed), "a compressed engine entry", "compressed");
    expect_refusal(Bytes(s.file.begin(), s.file.begin() + static_cast<long>(s.file.size() / 2)), "a file cut in half",
                   "truncated");
    expect_refusal(Bytes{}, "an empty file", "");
    EngineEntry future = s.engine;
    future.index["architecture"] = "sptmod26";
    expect_refusal(s.with_engine_entry(future.bytes()), "an architecture the engine cannot run", "sptmod26");
    // a 50-byte zip64 archive whose end-of-directory record points at offset 0 of itself: the
    // zip64 record (56 bytes) cannot fit, and reading it would run past the end of the buffer
    Bytes zip64(50, 0);
    set32(zip64, 0, 0x06064b50);   // zip64 end-of-directory signature at offset 0
    set32(zip64, 8, 0x07064b50);   // zip64 locator at end record - 20; record offset (u64 at 16) = 0
    set32(zip64, 28, 0x06054b50);  // end record at 28 (22 bytes, no comment)
    zip64[38] = zip64[39] = 0xFF;  // entries = 0xFFFF: look in the zip64 record
    expect_refusal(zip64, "a zip64 end record that does not fit in the file", "zip64");
    EngineEntry bad_shape = s.engine;
    bad_shape.index["blocks"][0]["channels"] = 9;
    expect_refusal(s.with_engine_entry(bad_shape.bytes()), "a block whose tensors do not match its channels", "shape");
  });

  runner.run("fuzz: " + std::to_string(cases) + " mutated files", [&] {
    std::mt19937_64 rng(run_seed);
    int loaded = 0, refused = 0;
    double slowest = 0.0;
    std::string slowest_case;
    for (int i = 0; i < cases; ++i) {
      const Seed& s = seeds[i % seeds.size()];
      const uint64_t case_seed = rng();
      std::mt19937_64 case_rng(case_seed);
      Case c;
      switch (case_rng() % 3) {
        case 0: c = raw_mutation(s.file, s.path, case_rng); break;
        case 1: c = raw_mutation(s.rebuilt, s.path + " rebuilt", case_rng); break;
        default: c = structured_mutation(s, case_rng); break;
      }
      const std::string label = "case " + std::to_string(i) + " (case seed " + std::to_string(case_seed) + ", " + c.what + ")";
      const auto start = std::chrono::steady_clock::now();
      std::string refusal;
      try {
        (try_case(c, &refusal) ? loaded : refused) += 1;
      } catch (const std::exception& e) {
        save_case(c, "fuzz_failure.ts");
        throw nctest::CheckFailure(label + ": threw " + typeid(e).name() + " (" + e.what() +
                                   ") instead of ModelFileError; saved as fuzz_failure.ts");
      }
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (seconds > slowest) {
        slowest = seconds;
        slowest_case = label;
      }
      if (seconds > 5.0) {
        save_case(c, "fuzz_failure.ts");
        throw nctest::CheckFailure(label + ": took " + std::to_string(seconds) + " s (a hang); saved as fuzz_failure.ts");
      }
    }
    std::fprintf(stderr, "  %d loaded and processed, %d refused with ModelFileError; slowest %.3f s: %s\n", loaded,
                 refused, slowest, slowest_case.c_str());
    check(loaded > 0 && refused > 0, "the mutations never loaded or never failed: the fuzzer explores nothing");
  });
  return runner.exit_code();
}
