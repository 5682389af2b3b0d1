# neuralcomp: `make demo` runs the main job, `make test` the test suite. Both install what they need
# (Debian packages, a virtual environment, the C++ host) on a fresh machine first.

PYTHON_SYSTEM ?= python3
VENV          := .venv
PYTHON        := $(VENV)/bin/python
BUILD_DIR     := build/cpp_host
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES  := cmake g++ make pkg-config libsndfile1-dev nlohmann-json3-dev libportaudio2 jackd2 zam-plugins \
                 fretsonfire-songs-muldjord dpf-source lilv-utils lv2-dev liblilv-dev lv2file sordi

.PHONY: setup system-deps venv build demo test bench plugins clean

setup: system-deps venv build

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON_SYSTEM) -m venv $(VENV)
	$(PYTHON) -m pip install -q -e ".[train,build,test,sweep]"
	touch $@

build: venv system-deps
	mkdir -p build
	cmake -S cpp_host -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_PREFIX_PATH="$$($(PYTHON) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
		-Dpybind11_DIR="$$($(PYTHON) -m pybind11 --cmakedir)" \
		-DPython_EXECUTABLE="$$(pwd)/$(PYTHON)" > $(BUILD_DIR).configure.log 2>&1 \
		|| { cat $(BUILD_DIR).configure.log; exit 1; }
	cmake --build $(BUILD_DIR) -j2

demo: setup
	$(VENV)/bin/neuralcomp demo --out out/demo

# The live tests start their own JACK dummy server (a real audio server with a real clock).
test: setup
	ctest --test-dir $(BUILD_DIR) --output-on-failure
	NEURALCOMP_REQUIRE_CPP=1 NEURALCOMP_REQUIRE_JACK=1 NEURALCOMP_REQUIRE_PLUGINS=1 NEURALCOMP_REQUIRE_SWEEP=1 \
		$(PYTHON) -m pytest -q

bench: setup
	$(VENV)/bin/neuralcomp export --untrained --preset sptmod25 --mode causal --controls 7 -o out/bench/sptmod25.ts
	$(VENV)/bin/neuralcomp export --untrained --preset sptmod24 --mode causal --controls 7 -o out/bench/sptmod24.ts
	$(VENV)/bin/neuralcomp bench out/bench/sptmod25.ts --out out/bench/sptmod25
	$(VENV)/bin/neuralcomp bench out/bench/sptmod24.ts --out out/bench/sptmod24

# The shipped ZamComp model as VST3, CLAP and LV2 plugins in build/plugins (DPF; 1-3 minutes on 2 cores),
# with the test hosts nc-clap-host and nc-lv2-apply in build/plugin-build/zamcomp_tiny/cmake.
PLUGIN_MODEL ?= presets/trained/zamcomp_tiny.ts
plugins: setup
	$(VENV)/bin/neuralcomp plugin $(PLUGIN_MODEL) -o build/plugins --name "ZamComp Tiny" \
		--build-dir build/plugin-build/zamcomp_tiny --tools

clean:
	rm -rf build out neuralcomp/host/_cpp_host*.so
