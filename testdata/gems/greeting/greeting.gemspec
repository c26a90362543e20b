# The ruby-web test app's own gem, built into ../../apps/ruby-web/vendor/cache with
# `gem build greeting.gemspec` (SOURCE_DATE_EPOCH fixed, so the same bytes each time).
Gem::Specification.new do |s|
  s.name = "greeting"
  s.version = "1.0.0"
  s.summary = "Greets by name"
  s.authors = ["solum-build"]
  s.license = "Apache-2.0"
  s.files = ["lib/greeting.rb"]
  s.required_ruby_version = ">= 2.7"
end
