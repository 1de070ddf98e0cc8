# p2p-chat: the commands a person needs. `make help` lists them.

CARGO ?= cargo
NAME  ?= alice
PEERS ?= peers.txt

.PHONY: help build run test demo demo-tmux bench clean

help:
	@echo "make build              build the release binary (target/release/p2p-chat)"
	@echo "make run NAME=alice     run one peer from $(PEERS)"
	@echo "make demo               five local peers chat by script; checks its own transcript"
	@echo "make demo-tmux          five peers in tmux panes, for you to type into"
	@echo "make test               format check, clippy (warnings are errors), all tests"
	@echo "make bench              throughput and latency (five runs), idle close, cost, budget"
	@echo "make clean              remove build output"

build:
	$(CARGO) build --release

run: build
	./target/release/p2p-chat --peers $(PEERS) $(NAME)

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings
	$(CARGO) test --quiet

demo: build
	$(CARGO) run --release --quiet --bin p2p-chat-demo -- --peers $(PEERS) --timeline target/demo-timeline.svg

demo-tmux: build
	$(CARGO) run --release --quiet --bin p2p-chat-demo -- --tmux --peers $(PEERS)

bench:
	$(CARGO) bench --bench chat

clean:
	$(CARGO) clean
