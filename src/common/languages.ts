/**
 * ISO 639-1 codes Polyglot accepts, with the English name used in prompts.
 * The list is deliberately finite: an unknown code is almost always a typo (`ge` for German),
 * and a closed table lets the spec error name the fix.
 */
// prettier-ignore
export const LANGUAGES: Readonly<Record<string, string>> = {
  af: 'Afrikaans', am: 'Amharic', ar: 'Arabic', az: 'Azerbaijani', be: 'Belarusian', bg: 'Bulgarian',
  bn: 'Bengali', bs: 'Bosnian', ca: 'Catalan', cs: 'Czech', cy: 'Welsh', da: 'Danish', de: 'German',
  el: 'Greek', en: 'English', es: 'Spanish', et: 'Estonian', eu: 'Basque', fa: 'Persian', fi: 'Finnish',
  fr: 'French', ga: 'Irish', gl: 'Galician', gu: 'Gujarati', ha: 'Hausa', he: 'Hebrew', hi: 'Hindi',
  hr: 'Croatian', hu: 'Hungarian', hy: 'Armenian', id: 'Indonesian', ig: 'Igbo', is: 'Icelandic',
  it: 'Italian', ja: 'Japanese', jv: 'Javanese', ka: 'Georgian', kk: 'Kazakh', km: 'Khmer', kn: 'Kannada',
  ko: 'Korean', ky: 'Kyrgyz', lo: 'Lao', lt: 'Lithuanian', lv: 'Latvian', mk: 'Macedonian',
  ml: 'Malayalam', mn: 'Mongolian', mr: 'Marathi', ms: 'Malay', mt: 'Maltese', my: 'Burmese', ne: 'Nepali',
  nl: 'Dutch', no: 'Norwegian', pa: 'Punjabi', pl: 'Polish', ps: 'Pashto', pt: 'Portuguese', ro: 'Romanian',
  ru: 'Russian', si: 'Sinhala', sk: 'Slovak', sl: 'Slovenian', so: 'Somali', sq: 'Albanian', sr: 'Serbian',
  sv: 'Swedish', sw: 'Swahili', ta: 'Tamil', te: 'Telugu', th: 'Thai', tl: 'Tagalog', tr: 'Turkish',
  uk: 'Ukrainian', ur: 'Urdu', uz: 'Uzbek', vi: 'Vietnamese', xh: 'Xhosa', yo: 'Yoruba', zh: 'Chinese',
  zu: 'Zulu',
};

/** Common mistakes mapped to the code the user most likely meant, for error messages. */
// prettier-ignore
const LIKELY_MEANT: Readonly<Record<string, string>> = {
  ge: 'de', ger: 'de', deu: 'de', sp: 'es', spa: 'es', jp: 'ja', jpn: 'ja', cz: 'cs', ces: 'cs', ara: 'ar',
  ind: 'id', in: 'id', fil: 'tl', tgl: 'tl', eng: 'en', fra: 'fr', fre: 'fr', cn: 'zh', kr: 'ko', ua: 'uk',
};

export function languageName(code: string): string {
  const name = LANGUAGES[code];
  if (!name) throw new Error(`unknown language code "${code}"`);
  return name;
}

export function suggestLanguage(code: string): string | undefined {
  const lower = code.toLowerCase();
  if (LANGUAGES[lower]) return lower;
  return LIKELY_MEANT[lower];
}
