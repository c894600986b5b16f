// The JS port of Hugging Face tokenizers bundled in an @lenml/tokenizer-* package
// (dist/main.global.js, no other module needed) over a JSON list of strings:
//   node hf_js_encode.js PACKAGE_DIR corpus.json out.json
// out.json: {"encode": [[ids]...] (add_special_tokens false), "with_bos": [[ids]...]
//            (add_special_tokens true), "decode": [text of encode...] (no clean-up of spaces)}
const fs = require('fs');
const path = require('path');
const vm = require('vm');
const [dir, corpusPath, outPath] = process.argv.slice(2);
// The bundle declares one global ("var Llama3Tokenizer = ..."; some builds misname it): bind it.
const code = fs.readFileSync(path.join(dir, 'dist', 'main.global.js'), 'utf-8')
  .replace(/^"use strict";var [\w$]+=/, '"use strict";globalThis.__tokenizer_module=');
vm.runInThisContext(code);
const tok = globalThis.__tokenizer_module.fromPreTrained();
const corpus = JSON.parse(fs.readFileSync(corpusPath, 'utf-8'));
const encode = corpus.map(s => Array.from(tok.encode(s, { add_special_tokens: false })));
fs.writeFileSync(outPath, JSON.stringify({
  encode,
  with_bos: corpus.map(s => Array.from(tok.encode(s))),
  decode: encode.map(ids => (ids.length ? tok.decode(ids, { clean_up_tokenization_spaces: false }) : "")),
}));
