#include "clip/checkpoint.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>
#include <vector>

#include "core/array.h"
#include "core/error.h"
#include "core/sha256.h"

namespace winclip::clip {
namespace {

// Deepest JSON nesting a safetensors header needs is 3 (object, entry, shape).
constexpr int kMaxJsonDepth = 16;

uint64_t read_le(const uint8_t* p, int bytes) {
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// ---------------------------------------------------------------------------
// A file read by offset, with every read bounds-checked.

class RandomAccessFile {
  public:
    explicit RandomAccessFile(const std::string& path) : path_(path) {
        in_.open(path, std::ios::binary);
        if (!in_) throw IoError(fmt::format("cannot open checkpoint {}", path));
        in_.seekg(0, std::ios::end);
        size_ = static_cast<uint64_t>(in_.tellg());
    }
    uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }

    void check_range(uint64_t offset, uint64_t bytes, const std::string& what) const {
        if (offset > size_ || bytes > size_ - offset) {
            throw ModelError(
                fmt::format("checkpoint {} is truncated: {} needs {} bytes at offset {} but "
                            "the file has {}",
                            path_, what, bytes, offset, size_));
        }
    }
    void read(uint64_t offset, void* dst, uint64_t bytes, const std::string& what) {
        check_range(offset, bytes, what);
        in_.seekg(static_cast<std::streamoff>(offset));
        in_.read(static_cast<char*>(dst), static_cast<std::streamsize>(bytes));
        if (!in_) throw IoError(fmt::format("cannot read {} from checkpoint {}", what, path_));
    }
    std::vector<uint8_t> read(uint64_t offset, uint64_t bytes, const std::string& what) {
        check_range(offset, bytes, what);  // before allocating what the file claims
        std::vector<uint8_t> out(bytes);
        read(offset, out.data(), bytes, what);
        return out;
    }

  private:
    std::string path_;
    std::ifstream in_;
    uint64_t size_ = 0;
};

// ---------------------------------------------------------------------------
// Zip archives (PKWARE APPNOTE): end of central directory, optional zip64
// records, central directory, local headers. torch.save stores every entry
// uncompressed; compressed or encrypted entries are refused.

struct ZipEntry {
    uint64_t local_header_offset = 0;
    uint64_t size = 0;
    uint32_t crc32 = 0;
};

class ZipArchive {
  public:
    explicit ZipArchive(RandomAccessFile& file) : file_(file) { read_directory(); }

    const std::map<std::string, ZipEntry>& entries() const { return entries_; }
    bool contains(const std::string& name) const { return entries_.count(name) > 0; }

    uint64_t entry_size(const std::string& name) const { return entries_.at(name).size; }

    // Reads a whole entry into dst (entry_size bytes) and checks its CRC-32.
    void read_entry(const std::string& name, void* dst) {
        const ZipEntry& e = entries_.at(name);
        const auto header = file_.read(e.local_header_offset, 30, "local header of " + name);
        if (read_le(header.data(), 4) != 0x04034b50) {
            throw ModelError(fmt::format("checkpoint {}: bad local header for zip entry {}",
                                         file_.path(), name));
        }
        const uint64_t data_offset = e.local_header_offset + 30 + read_le(header.data() + 26, 2) +
                                     read_le(header.data() + 28, 2);
        file_.read(data_offset, dst, e.size, "zip entry " + name);
        uLong crc = ::crc32(0L, Z_NULL, 0);
        const auto* p = static_cast<const Bytef*>(dst);
        for (uint64_t done = 0; done < e.size;) {  // zlib takes 32-bit lengths
            const uInt chunk = static_cast<uInt>(std::min<uint64_t>(e.size - done, 1u << 30));
            crc = ::crc32(crc, p + done, chunk);
            done += chunk;
        }
        if (static_cast<uint32_t>(crc) != e.crc32) {
            throw ModelError(fmt::format("checkpoint {}: zip entry {} is corrupt (CRC-32 mismatch)",
                                         file_.path(), name));
        }
    }
    std::vector<uint8_t> read_entry(const std::string& name) {
        std::vector<uint8_t> out(entry_size(name));
        read_entry(name, out.data());
        return out;
    }

  private:
    [[noreturn]] void bad(const std::string& what) const {
        throw ModelError(
            fmt::format("checkpoint {} is not a readable zip archive ({}); the file "
                        "may be truncated",
                        file_.path(), what));
    }

    void read_directory() {
        // The end-of-central-directory record sits in the last 22 + 65535 bytes.
        const uint64_t size = file_.size();
        if (size < 22) bad("shorter than an end-of-directory record");
        const uint64_t tail_len = std::min<uint64_t>(size, 22 + 65535);
        const auto tail = file_.read(size - tail_len, tail_len, "end of central directory");
        int64_t eocd = -1;
        for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i) {
            if (read_le(&tail[i], 4) == 0x06054b50) {
                eocd = i;
                break;
            }
        }
        if (eocd < 0) bad("no end-of-central-directory record");
        const uint8_t* r = &tail[eocd];
        uint64_t count = read_le(r + 10, 2);
        uint64_t dir_size = read_le(r + 12, 4);
        uint64_t dir_offset = read_le(r + 16, 4);
        const uint64_t eocd_pos = size - tail_len + static_cast<uint64_t>(eocd);

        // Zip64: the locator sits right before the classic record.
        if (eocd_pos >= 20) {
            const auto loc = file_.read(eocd_pos - 20, 20, "zip64 locator");
            if (read_le(loc.data(), 4) == 0x07064b50) {
                const uint64_t rec_pos = read_le(loc.data() + 8, 8);
                const auto rec = file_.read(rec_pos, 56, "zip64 end of central directory");
                if (read_le(rec.data(), 4) != 0x06064b50) bad("bad zip64 end-of-directory record");
                count = read_le(rec.data() + 32, 8);
                dir_size = read_le(rec.data() + 40, 8);
                dir_offset = read_le(rec.data() + 48, 8);
            }
        }
        const auto dir = file_.read(dir_offset, dir_size, "central directory");
        uint64_t pos = 0;
        for (uint64_t n = 0; n < count; ++n) {
            if (pos + 46 > dir.size()) bad("central directory ends early");
            const uint8_t* h = &dir[pos];
            if (read_le(h, 4) != 0x02014b50) bad("bad central directory entry");
            const uint64_t flags = read_le(h + 8, 2);
            const uint64_t method = read_le(h + 10, 2);
            ZipEntry e;
            e.crc32 = static_cast<uint32_t>(read_le(h + 16, 4));
            uint64_t compressed = read_le(h + 20, 4);
            e.size = read_le(h + 24, 4);
            const uint64_t name_len = read_le(h + 28, 2);
            const uint64_t extra_len = read_le(h + 30, 2);
            const uint64_t comment_len = read_le(h + 32, 2);
            e.local_header_offset = read_le(h + 42, 4);
            if (pos + 46 + name_len + extra_len + comment_len > dir.size()) {
                bad("central directory ends early");
            }
            const std::string name(reinterpret_cast<const char*>(h + 46), name_len);
            // Zip64 extended information: 64-bit values for the fields set to all ones,
            // in the order uncompressed size, compressed size, header offset.
            const uint8_t* extra = h + 46 + name_len;
            for (uint64_t x = 0; x + 4 <= extra_len;) {
                const uint64_t id = read_le(extra + x, 2);
                const uint64_t len = read_le(extra + x + 2, 2);
                if (x + 4 + len > extra_len) bad("bad extra field in " + name);
                if (id == 0x0001) {
                    const uint8_t* f = extra + x + 4;
                    uint64_t used = 0;
                    auto take = [&](uint64_t& field) {
                        if (field != 0xFFFFFFFFu) return;
                        if (used + 8 > len) bad("short zip64 field in " + name);
                        field = read_le(f + used, 8);
                        used += 8;
                    };
                    take(e.size);
                    take(compressed);
                    take(e.local_header_offset);
                }
                x += 4 + len;
            }
            if (flags & 0x1) {
                throw ModelError(
                    fmt::format("checkpoint {}: zip entry {} is encrypted", file_.path(), name));
            }
            if (method == 0 && compressed != e.size) {
                bad(fmt::format("stored entry {} has compressed size {} but size {}", name,
                                compressed, e.size));
            }
            if (method != 0) {
                throw ModelError(
                    fmt::format("checkpoint {}: zip entry {} is compressed (method {}); "
                                "torch.save writes entries uncompressed",
                                file_.path(), name, method));
            }
            // Sizes are claims of the file: one past its end would otherwise size an
            // allocation before the read finds the file too short.
            if (e.local_header_offset > file_.size() ||
                e.size > file_.size() - e.local_header_offset) {
                bad(fmt::format("entry {} claims {} bytes at offset {}, past the end of the "
                                "{}-byte file",
                                name, e.size, e.local_header_offset, file_.size()));
            }
            if (!entries_.emplace(name, e).second) bad("entry " + name + " appears twice");
            pos += 46 + name_len + extra_len + comment_len;
        }
    }

    RandomAccessFile& file_;
    std::map<std::string, ZipEntry> entries_;
};

// ---------------------------------------------------------------------------
// The restricted unpickler.

// Values are owned by the unpickler's arena and refer to each other by plain
// pointers: a pickle can nest a million tuples or make a list contain itself,
// and freeing such a graph through owning pointers would recurse that deep
// (stack overflow) or leak the cycle.
struct Value;
using ValuePtr = Value*;

struct Value {
    enum class Kind {
        kNone,
        kBool,
        kInt,
        kFloat,
        kString,
        kTuple,
        kList,
        kDict,
        kGlobal,
        kStorage,
        kTensor
    };
    Kind kind = Kind::kNone;
    int64_t integer = 0;          // kBool, kInt
    double real = 0;              // kFloat
    std::string text;             // kString; kGlobal as "module.name"; kStorage its key
    std::vector<ValuePtr> items;  // kTuple, kList
    std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // kDict, in insertion order
    torch::Tensor tensor;                                // kStorage (1-D), kTensor
};


const char* kind_name(Value::Kind k) {
    switch (k) {
        case Value::Kind::kNone:
            return "None";
        case Value::Kind::kBool:
            return "bool";
        case Value::Kind::kInt:
            return "int";
        case Value::Kind::kFloat:
            return "float";
        case Value::Kind::kString:
            return "str";
        case Value::Kind::kTuple:
            return "tuple";
        case Value::Kind::kList:
            return "list";
        case Value::Kind::kDict:
            return "dict";
        case Value::Kind::kGlobal:
            return "global";
        case Value::Kind::kStorage:
            return "storage";
        case Value::Kind::kTensor:
            return "tensor";
    }
    return "?";
}

// Storage classes torch.save names, and the dtype each holds. Only plain data.
const std::unordered_map<std::string, torch::ScalarType>& storage_types() {
    static const std::unordered_map<std::string, torch::ScalarType> t = {
        {"torch.HalfStorage", torch::kHalf},   {"torch.BFloat16Storage", torch::kBFloat16},
        {"torch.FloatStorage", torch::kFloat}, {"torch.DoubleStorage", torch::kDouble},
        {"torch.LongStorage", torch::kLong},   {"torch.IntStorage", torch::kInt},
        {"torch.ShortStorage", torch::kShort}, {"torch.CharStorage", torch::kChar},
        {"torch.ByteStorage", torch::kByte},   {"torch.BoolStorage", torch::kBool}};
    return t;
}

bool is_allowed_global(const std::string& name) {
    return name == "collections.OrderedDict" || name == "torch._utils._rebuild_tensor_v2" ||
           name == "torch._utils._rebuild_parameter" || storage_types().count(name) > 0;
}

class Unpickler {
  public:
    Unpickler(const std::vector<uint8_t>& data, ZipArchive& zip, std::string prefix,
              std::string origin)
        : data_(data), zip_(zip), prefix_(std::move(prefix)), origin_(std::move(origin)) {}

    ValuePtr run();

  private:
    [[noreturn]] void fail(const std::string& what) const {
        throw ModelError(fmt::format("checkpoint {}: {} (pickle byte {})", origin_, what, op_pos_));
    }
    const uint8_t* take(size_t n) {
        if (n > data_.size() - pos_) fail("the pickle ends early (truncated file?)");
        const uint8_t* p = data_.data() + pos_;
        pos_ += n;
        return p;
    }
    std::string take_line() {
        const size_t start = pos_;
        while (pos_ < data_.size() && data_[pos_] != '\n') ++pos_;
        if (pos_ >= data_.size()) fail("the pickle ends early (truncated file?)");
        std::string line(reinterpret_cast<const char*>(data_.data() + start), pos_ - start);
        ++pos_;
        return line;
    }
    ValuePtr pop() {
        if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) {
            fail("pickle stack underflow");
        }
        ValuePtr v = stack_.back();
        stack_.pop_back();
        return v;
    }
    ValuePtr& top() {
        if (stack_.empty()) fail("pickle stack underflow");
        return stack_.back();
    }
    std::vector<ValuePtr> pop_to_mark() {
        if (marks_.empty()) fail("pickle has no MARK");
        const size_t m = marks_.back();
        marks_.pop_back();
        std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
        stack_.resize(m);
        return items;
    }
    void push(ValuePtr v) { stack_.push_back(v); }
    ValuePtr make(Value::Kind kind) {
        arena_.push_back(std::make_unique<Value>());
        arena_.back()->kind = kind;
        return arena_.back().get();
    }
    void push_int(int64_t i) {
        auto v = make(Value::Kind::kInt);
        v->integer = i;
        push(v);
    }
    void push_string(std::string s) {
        auto v = make(Value::Kind::kString);
        v->text = std::move(s);
        push(v);
    }
    void push_global(const std::string& module, const std::string& name) {
        const std::string full = module + "." + name;
        // Loading runs no code from the file: only these names may appear.
        if (!is_allowed_global(full)) {
            fail(
                fmt::format("the pickle refers to {}, which is not allowed in a state dict "
                            "(only collections.OrderedDict, torch storages and tensor rebuild "
                            "functions are)",
                            full));
        }
        auto v = make(Value::Kind::kGlobal);
        v->text = full;
        push(v);
    }
    ValuePtr& dict_top() {
        ValuePtr& d = top();
        if (d->kind != Value::Kind::kDict) fail(fmt::format("SETITEM on a {}", kind_name(d->kind)));
        return d;
    }
    ValuePtr& list_top() {
        ValuePtr& l = top();
        if (l->kind != Value::Kind::kList) fail(fmt::format("APPEND on a {}", kind_name(l->kind)));
        return l;
    }
    int64_t as_int(const ValuePtr& v, const char* what) const {
        if (v->kind != Value::Kind::kInt && v->kind != Value::Kind::kBool) {
            fail(fmt::format("{} must be an int, got {}", what, kind_name(v->kind)));
        }
        return v->integer;
    }
    std::vector<int64_t> as_int_tuple(const ValuePtr& v, const char* what) const {
        if (v->kind != Value::Kind::kTuple) {
            fail(fmt::format("{} must be a tuple, got {}", what, kind_name(v->kind)));
        }
        std::vector<int64_t> out;
        for (const auto& item : v->items) out.push_back(as_int(item, what));
        return out;
    }

    ValuePtr load_storage(const ValuePtr& pid);
    ValuePtr reduce(const ValuePtr& callable, const ValuePtr& args);
    ValuePtr rebuild_tensor(const ValuePtr& args);

    std::vector<std::unique_ptr<Value>> arena_;  // owns every value made
    const std::vector<uint8_t>& data_;
    ZipArchive& zip_;
    std::string prefix_;  // "archive/"
    std::string origin_;
    size_t pos_ = 0;
    size_t op_pos_ = 0;
    std::vector<ValuePtr> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, ValuePtr> memo_;
    std::unordered_map<std::string, ValuePtr> storages_;  // key -> loaded storage
};

// BINPERSID with ('storage', StorageType, key, location, numel): the bytes are
// the zip entry <archive>/data/<key>.
ValuePtr Unpickler::load_storage(const ValuePtr& pid) {
    if (pid->kind != Value::Kind::kTuple || pid->items.size() != 5 ||
        pid->items[0]->kind != Value::Kind::kString || pid->items[0]->text != "storage" ||
        pid->items[1]->kind != Value::Kind::kGlobal ||
        pid->items[2]->kind != Value::Kind::kString) {
        fail("unsupported persistent id (expected ('storage', type, key, location, numel))");
    }
    const std::string& key = pid->items[2]->text;
    auto type_it = storage_types().find(pid->items[1]->text);
    if (type_it == storage_types().end()) fail("persistent id names " + pid->items[1]->text);
    const int64_t numel = as_int(pid->items[4], "storage size");
    if (numel < 0) fail("negative storage size");
    auto cached = storages_.find(key);
    if (cached != storages_.end()) {
        // Tensors sharing a storage name it alike; another type would
        // reinterpret its bytes.
        if (cached->second->tensor.scalar_type() != type_it->second ||
            cached->second->tensor.numel() != numel) {
            fail(fmt::format("storage {} is named as {} of {} elements and earlier as {} of {}",
                             key, pid->items[1]->text, numel,
                             c10::toString(cached->second->tensor.scalar_type()),
                             cached->second->tensor.numel()));
        }
        return cached->second;
    }

    const std::string entry = prefix_ + "data/" + key;
    if (!zip_.contains(entry)) fail("storage " + entry + " is missing from the archive");
    const torch::ScalarType dtype = type_it->second;
    const uint64_t element = c10::elementSize(dtype);
    // numel * element can wrap around; compare by division first.
    if (static_cast<uint64_t>(numel) > zip_.entry_size(entry) / element) {
        fail(fmt::format("storage {} holds {} bytes, fewer than {} x {}", entry,
                         zip_.entry_size(entry), numel, c10::toString(dtype)));
    }
    const uint64_t bytes = static_cast<uint64_t>(numel) * element;
    if (zip_.entry_size(entry) != bytes) {
        fail(fmt::format("storage {} holds {} bytes, expected {} ({} x {})", entry,
                         zip_.entry_size(entry), bytes, numel, c10::toString(dtype)));
    }
    auto v = make(Value::Kind::kStorage);
    v->text = key;
    v->tensor = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
    zip_.read_entry(entry, v->tensor.data_ptr());
    storages_[key] = v;
    return v;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]): a strided view of the storage.
ValuePtr Unpickler::rebuild_tensor(const ValuePtr& args) {
    if (args->items.size() < 4 || args->items[0]->kind != Value::Kind::kStorage) {
        fail("_rebuild_tensor_v2 needs (storage, offset, size, stride, ...)");
    }
    const torch::Tensor& storage = args->items[0]->tensor;
    const int64_t offset = as_int(args->items[1], "storage offset");
    const std::vector<int64_t> size = as_int_tuple(args->items[2], "tensor size");
    const std::vector<int64_t> stride = as_int_tuple(args->items[3], "tensor stride");
    if (size.size() != stride.size()) fail("tensor size and stride differ in length");
    // The view must stay inside its storage, computed without int64 overflow.
    // It may hold no more elements than the storage either: a zero stride
    // (an expanded tensor) would otherwise let a few stored bytes demand an
    // arbitrarily large copy. torch.save of a state dict never writes one
    // (docs/known-differences.md).
    int64_t last = offset;
    int64_t numel = 1;
    bool empty = false, overflow = false;
    for (size_t d = 0; d < size.size(); ++d) {
        if (size[d] < 0 || stride[d] < 0) fail("negative tensor size or stride");
        if (size[d] == 0) empty = true;
    }
    for (size_t d = 0; d < size.size() && !empty; ++d) {
        int64_t step = 0;
        overflow = overflow || __builtin_mul_overflow(size[d] - 1, stride[d], &step) ||
                   __builtin_add_overflow(last, step, &last) ||
                   __builtin_mul_overflow(numel, size[d], &numel);
    }
    if (offset < 0 || (!empty && (overflow || last >= storage.numel() ||
                                  numel > storage.numel()))) {
        fail(
            fmt::format("tensor view {} with stride {} at offset {} exceeds its storage of {} "
                        "elements",
                        shape_string(size), shape_string(stride), offset, storage.numel()));
    }
    auto v = make(Value::Kind::kTensor);
    v->tensor = empty ? torch::empty(size, storage.options())
                      : storage.as_strided(size, stride, offset).contiguous();
    return v;
}

ValuePtr Unpickler::reduce(const ValuePtr& callable, const ValuePtr& args) {
    if (callable->kind != Value::Kind::kGlobal) fail("REDUCE on a non-callable");
    if (args->kind != Value::Kind::kTuple) fail("REDUCE arguments are not a tuple");
    const std::string& f = callable->text;
    if (f == "collections.OrderedDict") {
        auto d = make(Value::Kind::kDict);
        if (args->items.size() == 1 && args->items[0]->kind == Value::Kind::kList) {
            for (const auto& pair : args->items[0]->items) {
                if (pair->kind != Value::Kind::kTuple || pair->items.size() != 2) {
                    fail("OrderedDict items must be pairs");
                }
                d->entries.emplace_back(pair->items[0], pair->items[1]);
            }
        } else if (!args->items.empty()) {
            fail("unsupported OrderedDict arguments");
        }
        return d;
    }
    if (f == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(args);
    if (f == "torch._utils._rebuild_parameter") {
        if (args->items.empty() || args->items[0]->kind != Value::Kind::kTensor) {
            fail("_rebuild_parameter needs a tensor");
        }
        return args->items[0];
    }
    fail("cannot call " + f);
}

ValuePtr Unpickler::run() {
    while (true) {
        op_pos_ = pos_;
        const uint8_t op = *take(1);
        switch (op) {
            case 0x80: {  // PROTO
                const uint8_t proto = *take(1);
                if (proto > 5) fail(fmt::format("pickle protocol {} is not supported", proto));
                break;
            }
            case 0x95:
                take(8);
                break;   // FRAME: a framing hint only
            case 'c': {  // GLOBAL
                const std::string module = take_line();
                const std::string name = take_line();
                push_global(module, name);
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                ValuePtr name = pop();
                ValuePtr module = pop();
                if (name->kind != Value::Kind::kString || module->kind != Value::Kind::kString) {
                    fail("STACK_GLOBAL needs two strings");
                }
                push_global(module->text, name->text);
                break;
            }
            case 'Q':
                push(load_storage(pop()));
                break;   // BINPERSID
            case 'R': {  // REDUCE
                ValuePtr args = pop();
                ValuePtr callable = pop();
                push(reduce(callable, args));
                break;
            }
            case 'b': {  // BUILD: the OrderedDict's _metadata attribute; not needed
                pop();
                if (top()->kind != Value::Kind::kDict) {
                    fail(fmt::format("BUILD on a {}", kind_name(top()->kind)));
                }
                break;
            }
            case '(':
                marks_.push_back(stack_.size());
                break;   // MARK
            case 't': {  // TUPLE
                auto v = make(Value::Kind::kTuple);
                v->items = pop_to_mark();
                push(v);
                break;
            }
            case ')':
                push(make(Value::Kind::kTuple));
                break;  // EMPTY_TUPLE
            case 0x85:
            case 0x86:
            case 0x87: {  // TUPLE1, TUPLE2, TUPLE3
                auto v = make(Value::Kind::kTuple);
                v->items.resize(op - 0x84);
                for (size_t i = v->items.size(); i-- > 0;) v->items[i] = pop();
                push(v);
                break;
            }
            case ']':
                push(make(Value::Kind::kList));
                break;   // EMPTY_LIST
            case 'l': {  // LIST
                auto v = make(Value::Kind::kList);
                v->items = pop_to_mark();
                push(v);
                break;
            }
            case '}':
                push(make(Value::Kind::kDict));
                break;   // EMPTY_DICT
            case 'd': {  // DICT
                auto items = pop_to_mark();
                if (items.size() % 2) fail("DICT with an odd number of items");
                auto v = make(Value::Kind::kDict);
                for (size_t i = 0; i < items.size(); i += 2)
                    v->entries.emplace_back(items[i], items[i + 1]);
                push(v);
                break;
            }
            case 'a': {  // APPEND
                ValuePtr item = pop();
                list_top()->items.push_back(item);
                break;
            }
            case 'e': {  // APPENDS
                auto items = pop_to_mark();
                auto& l = list_top()->items;
                l.insert(l.end(), items.begin(), items.end());
                break;
            }
            case 's': {  // SETITEM
                ValuePtr value = pop();
                ValuePtr key = pop();
                dict_top()->entries.emplace_back(key, value);
                break;
            }
            case 'u': {  // SETITEMS
                auto items = pop_to_mark();
                if (items.size() % 2) fail("SETITEMS with an odd number of items");
                auto& d = dict_top()->entries;
                for (size_t i = 0; i < items.size(); i += 2) d.emplace_back(items[i], items[i + 1]);
                break;
            }
            case 'J':
                push_int(static_cast<int32_t>(read_le(take(4), 4)));
                break;  // BININT
            case 'K':
                push_int(*take(1));
                break;  // BININT1
            case 'M':
                push_int(static_cast<int64_t>(read_le(take(2), 2)));
                break;    // BININT2
            case 0x8a: {  // LONG1
                const uint8_t n = *take(1);
                if (n > 8) fail("integer wider than 64 bits");
                const uint8_t* p = take(n);
                uint64_t u = n ? read_le(p, n) : 0;
                if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t{0} << (8 * n);  // sign
                push_int(static_cast<int64_t>(u));
                break;
            }
            case 'G': {  // BINFLOAT, big endian
                const uint8_t* p = take(8);
                uint64_t u = 0;
                for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];
                auto v = make(Value::Kind::kFloat);
                std::memcpy(&v->real, &u, 8);
                push(v);
                break;
            }
            case 'X': {  // BINUNICODE
                const uint64_t n = read_le(take(4), 4);
                push_string(std::string(reinterpret_cast<const char*>(take(n)), n));
                break;
            }
            case 0x8c: {  // SHORT_BINUNICODE
                const uint64_t n = *take(1);
                push_string(std::string(reinterpret_cast<const char*>(take(n)), n));
                break;
            }
            case 0x8d: {  // BINUNICODE8
                const uint64_t n = read_le(take(8), 8);
                push_string(std::string(reinterpret_cast<const char*>(take(n)), n));
                break;
            }
            case 0x88:
            case 0x89: {  // NEWTRUE, NEWFALSE
                auto v = make(Value::Kind::kBool);
                v->integer = op == 0x88;
                push(v);
                break;
            }
            case 'N':
                push(make(Value::Kind::kNone));
                break;  // NONE
            case 'q':
                memo_[*take(1)] = top();
                break;  // BINPUT
            case 'r':
                memo_[read_le(take(4), 4)] = top();
                break;    // LONG_BINPUT
            case 0x94: {  // MEMOIZE
                const uint64_t index = memo_.size();
                memo_[index] = top();
                break;
            }
            case 'h':
            case 'j': {  // BINGET, LONG_BINGET
                const uint64_t index = op == 'h' ? *take(1) : read_le(take(4), 4);
                auto it = memo_.find(index);
                if (it == memo_.end()) fail(fmt::format("memo entry {} is not set", index));
                push(it->second);
                break;
            }
            case '0':
                pop();
                break;  // POP
            case '1':
                pop_to_mark();
                break;   // POP_MARK
            case '.': {  // STOP
                if (stack_.size() != 1 || !marks_.empty())
                    fail("the pickle stack is not one value at STOP");
                return stack_.back();
            }
            default:
                fail(
                    fmt::format("unsupported pickle opcode 0x{:02x}; a torch.save state dict "
                                "does not use it",
                                op));
        }
    }
}

// ---------------------------------------------------------------------------
// Formats

StateDict to_state_dict(const ValuePtr& root, const std::string& path) {
    ValuePtr dict = root;
    if (dict->kind != Value::Kind::kDict) {
        throw ModelError(fmt::format("checkpoint {} holds a {}, not a dict of tensors", path,
                                     kind_name(dict->kind)));
    }
    // OpenCLIP training checkpoints keep the weights under "state_dict".
    for (const auto& [k, v] : dict->entries) {
        if (k->kind == Value::Kind::kString && k->text == "state_dict" &&
            v->kind == Value::Kind::kDict) {
            dict = v;
            break;
        }
    }
    StateDict out;
    for (const auto& [k, v] : dict->entries) {
        if (k->kind != Value::Kind::kString) {
            throw ModelError(fmt::format("checkpoint {}: a state-dict key is a {}, not a string",
                                         path, kind_name(k->kind)));
        }
        if (v->kind != Value::Kind::kTensor) {
            throw ModelError(fmt::format("checkpoint {}: entry {} is a {}, not a tensor", path,
                                         k->text, kind_name(v->kind)));
        }
        // Python would keep the last; a state dict never repeats a key, so a
        // repetition means a damaged or crafted file.
        if (!out.emplace(k->text, v->tensor).second) {
            throw ModelError(
                fmt::format("checkpoint {}: state-dict key {} appears twice", path, k->text));
        }
    }
    return out;
}

StateDict load_torch_zip(RandomAccessFile& file) {
    ZipArchive zip(file);
    // torch.save puts everything in one top-level folder named after the file.
    std::string pickle_entry;
    for (const auto& [name, entry] : zip.entries()) {
        const size_t slash = name.find('/');
        if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
            pickle_entry = name;
            break;
        }
    }
    if (pickle_entry.empty()) {
        throw ModelError(
            fmt::format("checkpoint {} is a zip archive without <archive>/data.pkl; "
                        "not a torch.save file",
                        file.path()));
    }
    const std::string prefix = pickle_entry.substr(0, pickle_entry.size() - 8);
    if (zip.contains(prefix + "byteorder")) {
        const auto order = zip.read_entry(prefix + "byteorder");
        if (std::string(order.begin(), order.end()) != "little") {
            throw ModelError(
                fmt::format("checkpoint {} stores big-endian tensors; only little "
                            "endian is supported",
                            file.path()));
        }
    }
    const std::vector<uint8_t> pickle = zip.read_entry(pickle_entry);
    Unpickler unpickler(pickle, zip, prefix, file.path());
    return to_state_dict(unpickler.run(), file.path());
}

StateDict load_safetensors(RandomAccessFile& file) {
    const std::string& path = file.path();
    uint8_t len_bytes[8];
    file.read(0, len_bytes, 8, "safetensors header length");
    const uint64_t header_len = read_le(len_bytes, 8);
    if (header_len > file.size() - 8 || header_len > (uint64_t{100} << 20)) {
        throw ModelError(
            fmt::format("checkpoint {}: safetensors header of {} bytes does not fit "
                        "the {}-byte file (truncated?)",
                        path, header_len, file.size()));
    }
    const auto header_bytes = file.read(8, header_len, "safetensors header");
    nlohmann::json header;
    // The header is a flat object of small objects. Deeper nesting is refused
    // while parsing, as nlohmann's dump() (used in messages) recurses per level;
    // a repeated key is refused where nlohmann would keep only one of them.
    std::set<std::string> keys;
    const nlohmann::json::parser_callback_t check = [&](int depth,
                                                        nlohmann::json::parse_event_t event,
                                                        nlohmann::json& parsed) {
        using Event = nlohmann::json::parse_event_t;
        if ((event == Event::object_start || event == Event::array_start) && depth > kMaxJsonDepth) {
            throw ModelError(fmt::format("checkpoint {}: safetensors header is nested deeper "
                                         "than {} levels",
                                         path, kMaxJsonDepth));
        }
        if (event == Event::key && depth == 1 && !keys.insert(parsed.get<std::string>()).second) {
            throw ModelError(fmt::format("checkpoint {}: safetensors entry {} appears twice",
                                         path, parsed.get<std::string>()));
        }
        return true;
    };
    try {
        header = nlohmann::json::parse(header_bytes.begin(), header_bytes.end(), check);
    } catch (const nlohmann::json::exception& e) {
        throw ModelError(
            fmt::format("checkpoint {}: safetensors header is not JSON: {}", path, e.what()));
    }
    if (!header.is_object()) {
        throw ModelError(
            fmt::format("checkpoint {}: safetensors header is not a JSON object", path));
    }
    static const std::unordered_map<std::string, torch::ScalarType> kTypes = {
        {"F16", torch::kHalf},   {"BF16", torch::kBFloat16}, {"F32", torch::kFloat},
        {"F64", torch::kDouble}, {"I64", torch::kLong},      {"I32", torch::kInt},
        {"I16", torch::kShort},  {"I8", torch::kChar},       {"U8", torch::kByte},
        {"BOOL", torch::kBool}};
    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = file.size() - data_start;
    StateDict out;
    std::map<uint64_t, std::pair<uint64_t, std::string>> extents;  // begin -> (end, key)
    for (const auto& [key, info] : header.items()) {
        if (key == "__metadata__") continue;
        auto bad = [&](const std::string& why) {
            return ModelError(
                fmt::format("checkpoint {}: safetensors entry {}: {}", path, key, why));
        };
        if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") ||
            !info.contains("data_offsets")) {
            throw bad("needs dtype, shape and data_offsets");
        }
        const auto type_it = info["dtype"].is_string()
                                 ? kTypes.find(info["dtype"].get<std::string>())
                                 : kTypes.end();
        if (type_it == kTypes.end()) throw bad("unsupported dtype " + info["dtype"].dump());
        std::vector<int64_t> shape;
        int64_t numel = 1;
        bool overflow = false;
        if (!info["shape"].is_array()) throw bad("shape " + info["shape"].dump() + " is not a list");
        for (const auto& d : info["shape"]) {
            if (!d.is_number_integer() || d.get<int64_t>() < 0)
                throw bad("bad shape " + info["shape"].dump());
            shape.push_back(d.get<int64_t>());
            overflow = overflow || __builtin_mul_overflow(numel, shape.back(), &numel);
        }
        uint64_t bytes = 0;
        if (overflow || __builtin_mul_overflow(static_cast<uint64_t>(numel),
                                               c10::elementSize(type_it->second), &bytes)) {
            throw bad("shape " + info["shape"].dump() + " has more elements than fit in memory");
        }
        const auto& off = info["data_offsets"];
        if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
            !off[1].is_number_unsigned()) {
            throw bad("bad data_offsets " + off.dump());
        }
        const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
        if (begin > end || end - begin != bytes) {
            throw bad(fmt::format("data_offsets {} do not hold {} values of {}", off.dump(), numel,
                                  info["dtype"].get<std::string>()));
        }
        if (end > data_size) {
            throw bad(
                fmt::format("data ends at byte {} past the {} data bytes in the file "
                            "(truncated?)",
                            end, data_size));
        }
        if (begin != end) extents[begin] = {end, key};
        torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(type_it->second));
        file.read(data_start + begin, t.data_ptr(), bytes, "tensor " + key);
        out[key] = t;
    }
    // The format lays tensors out one after another; two sharing bytes mean a
    // damaged or crafted header.
    uint64_t covered = 0;
    std::string previous;
    for (const auto& [begin, end_key] : extents) {
        if (begin < covered) {
            throw ModelError(fmt::format("checkpoint {}: safetensors entries {} and {} overlap",
                                         path, previous, end_key.second));
        }
        covered = end_key.first;
        previous = end_key.second;
    }
    return out;
}

// OpenCLIP strips "module." (left by DistributedDataParallel); here only when
// every key carries it, so a model with a real "module" submodule is untouched.
StateDict strip_module_prefix(StateDict state) {
    const std::string prefix = "module.";
    if (state.empty()) return state;
    for (const auto& [k, v] : state) {
        if (k.compare(0, prefix.size(), prefix) != 0) return state;
    }
    StateDict out;
    for (auto& [k, v] : state) out[k.substr(prefix.size())] = v;
    return out;
}

}  // namespace

StateDict load_state_dict(const std::string& path) {
    RandomAccessFile file(path);
    uint8_t magic[9] = {0};
    if (file.size() < 9) {
        throw ModelError(
            fmt::format("checkpoint {} has only {} bytes; not a checkpoint", path, file.size()));
    }
    file.read(0, magic, 9, "file signature");
    StateDict state;
    if (magic[0] == 'P' && magic[1] == 'K') {
        state = load_torch_zip(file);
    } else if (magic[0] == 0x80 && magic[1] <= 5) {
        throw ModelError(fmt::format(
            "checkpoint {} is in the legacy (non-zip) torch.save format, which is not supported; "
            "re-save it with torch.save from PyTorch >= 1.6 or convert it to safetensors",
            path));
    } else if (magic[8] == '{') {
        state = load_safetensors(file);
    } else {
        throw ModelError(
            fmt::format("checkpoint {} is neither a torch.save zip archive nor a "
                        "safetensors file",
                        path));
    }
    return strip_module_prefix(std::move(state));
}

std::string state_dict_sha256(const StateDict& state) {
    Sha256 hash;
    for (const auto& [key, tensor] : state) {
        hash.update(key.data(), key.size());
        const char nul = 0;
        hash.update(&nul, 1);
        for (int64_t d : tensor.sizes()) {
            uint8_t le[8];
            for (int i = 0; i < 8; ++i)
                le[i] = static_cast<uint8_t>(static_cast<uint64_t>(d) >> (8 * i));
            hash.update(le, 8);
        }
        const torch::Tensor f = tensor.to(torch::kFloat).contiguous();
        // Little-endian hosts only (checked when loading torch archives).
        hash.update(f.data_ptr<float>(), static_cast<size_t>(f.numel()) * sizeof(float));
    }
    return hash.hex_digest();
}

}  // namespace winclip::clip
