# bench/peers/sidekiq_jobs.rb: the noop job class Sidekiq runs in the peers benchmark (bench/peers/compare.py
# pre-fills queue "bench" with its JSON payloads straight into Redis and starts `sidekiq -r` on this file).
require 'sidekiq'

class NoopJob
  include Sidekiq::Worker
  sidekiq_options retry: false

  def perform(*_args); end
end
