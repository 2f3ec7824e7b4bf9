# Quick start: `make run` (the main job) and `make test`. Both first install
# the Debian packages the project builds against, when they are missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEB_PACKAGES := libsodium-dev libssl-dev libsqlite3-dev pkg-config

.PHONY: deps run test tsan build

deps:
	@if ! pkg-config --exists libsodium libcrypto sqlite3 2>/dev/null; then \
		echo "Installing $(DEB_PACKAGES)"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $(DEB_PACKAGES); \
	fi

build: deps
	swift build -c release --product micropay

run: build
	swift run -c release micropay demo

test: deps
	swift test
	$(MAKE) tsan

# The batch verifier's shards share windows across threads: its tests again
# under ThreadSanitizer, in a build directory of their own.
tsan: deps
	swift test --sanitize=thread --scratch-path .build/tsan --filter 'BatchPipelineTests|BatchFileTests'
